"""``tofu3 fetch``: the coordinator's own download of what the vantages agreed on, with the
vantages' registry protocol (tofu3.protocol) over the coordinator's HTTPS client
(tofu3.remote.https), written as an OCI image layout (tofu3.fetch.layout), a Homebrew bottle
named as brew names it (tofu3.fetch.bottle), or a plain file (tofu3.fetch.fetcher ties them
together)."""
