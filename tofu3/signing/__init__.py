"""Signing with SSH keys: SSHSIG signatures (what ``ssh-keygen -Y sign`` makes), allowed_signers,
DSSE envelopes. Keys come from an OpenSSH private key file or from ssh-agent."""
