"""The seams to the network: SSH (paramiko) and curl for the vantages, and the coordinator's
own HTTPS client (httpx, https.py) for ``tofu3 fetch``. Nothing above it imports paramiko."""
