"""TLS and trust on the fake."""

# --8<-- [start:tls]
from pathlib import Path

from fakeserver import FakeLXD
from pytest_lxd import Client

with FakeLXD(https=True) as fake:  # HTTPS on 127.0.0.1, a free port
    print(fake.https_url.startswith("https://127.0.0.1:"))  # True
    print(Path(fake.tls.cert_file).name, Path(fake.ca_file).name)  # server.crt server.ca

    # Untrusted: LXD's answers for an untrusted client.
    client = Client(fake.https_url, cert=("client.crt", "client.key"),
                    verify=fake.tls.cert_file)
    print(client.trusted)  # False

    # Trust the certificate over the unix socket, as `lxc config trust add client.crt` does.
    with Client(fake.socket_path) as local:
        local.certificates.create("", Path("client.crt").read_bytes(), name="me")
    client.refresh()
    print(client.trusted)  # True
    client.close()
# --8<-- [end:tls]
