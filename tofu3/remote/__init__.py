"""The one seam to the vantages: SSH (paramiko) and curl. Nothing above it imports paramiko."""
