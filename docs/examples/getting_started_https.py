"""Getting started over HTTPS (tests/docs runs it against the fake's HTTPS listener)."""

# --8<-- [start:https]
from pathlib import Path

from pytest_lxd import Client

# On the LXD host, over the unix socket: save the server's certificate, make a trust token.
with Client() as local:
    Path("server.crt").write_text(local.host_info["environment"]["certificate"])
    token = local.certificates.create_token(name="laptop")

# Anywhere: connect with a client certificate, then get it trusted.
client = Client(
    endpoint="https://127.0.0.1:8443",
    cert=("client.crt", "client.key"),  # default: the lxc client's, if there is one
    verify="server.crt",  # pin LXD's own certificate (or True, False, a CA bundle)
)
print(client.trusted)  # False
client.authenticate(token)  # a trust token, or the server's core.trust_password
print(client.trusted)  # True
print([profile.name for profile in client.profiles.all()])  # ['default']
# --8<-- [end:https]
client.close()
