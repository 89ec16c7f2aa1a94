"""x.509 PKI and mutual-TLS helpers used by every service, client and data stream.

Modules (Python API other packages use):

* ``config``     ``config_dir()`` and the on-disk layout of an identity (keys 0600, never sent anywhere)
* ``identity``   ``init()`` an identity (own CA + leaf, ed25519 or p256), ``load()``, ``public_key_pem()``
* ``trust``      trust lists: ``add_service(alias, url, ca_pem)``, ``add_client(name, ca_pem)``, ``listing()``,
                 ``client_authorities()`` (own CA first, then client CAs by trust name)
* ``names``      which names a trust entry may vouch for: own CA any it signed, ``NAME`` only NAME and NAME/...
* ``intro``      ``introduce(public_pem, name)`` -> ``Introduction``; ``add_intro(introduction)``
* ``tls``        ``server_context()`` / ``client_context(alias=...)``: TLS 1.3, client certificates required
* ``http``       ``client(alias_or_url)`` / ``async_client(...)``: httpx with base_url and mutual TLS
* ``caller``     ``Caller`` (name, vouched_by, own_ca, ``is_admin(admins)``), ``ClientTrust.identify(pem)``
* ``authenticate`` ASGI middleware: 403 and a log line for a name its issuer may not vouch for
* ``fastapi``    the ``caller`` dependency (403 without a vouched client certificate)
* ``serve``      ``serve(app, "https://HOST:PORT")``: uvicorn + mutual TLS + JSON access log
* ``asgi_tls``   how the peer certificate reaches the app: uvicorn protocol subclasses add the ASGI TLS
                 extension (``scope["extensions"]["tls"]["client_cert_chain"]``) per connection
* ``handshake``  refused handshakes send their TLS alert to the client and are logged by the server
* ``nng``        ``tls_config(server=...)``: pynng.TLSConfig for ``tls+tcp://`` data streams (p256 only)
* ``signature``  ``sign()`` / ``verify()`` HMAC-SHA256 bodies, header ``SIGNATURE_HEADER``
* ``callbacks``  ``post_signed()`` / ``deliver()``: signed JSON POST with bounded retries that never raises
* ``signer``     ``certified-signer``: signs local users' keys under their SO_PEERCRED login name

Problems a user can fix raise ``certified.errors.CertifiedError``; the CLIs turn it into exit status 2.
"""
