"""The lab: a local, offline stand-in for ghcr.io and Docker Hub plus three sshd vantages.

``pki`` makes the lab CA and server certificate, ``content`` builds the artifacts the lab
registry serves, and ``registry`` runs that registry (and its token realm and "CDN").
"""
