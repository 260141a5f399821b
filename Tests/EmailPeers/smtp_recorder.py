"""A real SMTP server for the email tests (aiosmtpd): records every message it accepts as a
JSON file in a directory, and can require STARTTLS and AUTH, or refuse recipients.

    smtp_recorder.py --port P --dir D [--cert C --key K [--implicit-tls]] [--auth USER:PASSWORD]

With a certificate the server requires STARTTLS, or with --implicit-tls speaks TLS from the
first byte (smtps).

A recipient whose local part contains `reject550` is refused with 550, one containing
`defer451` with 451 (a transient failure). Prints "ready" once it listens.
"""
import argparse
import base64
import json
import os
import signal
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, directory, implicit_tls):
        self.directory = directory
        self.implicit_tls = implicit_tls
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if "reject550" in local:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if "defer451" in local:
            return "451 4.3.0 <%s>: Temporary local problem, try again" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": base64.b64encode(envelope.content).decode(),
            "tls": self.implicit_tls or session.ssl is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
        }
        path = os.path.join(self.directory, "%06d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    parser.add_argument("--implicit-tls", action="store_true")
    args = parser.parse_args()

    kwargs = {}
    controller_kwargs = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            controller_kwargs["ssl_context"] = context
        else:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = bool(args.cert) and not args.implicit_tls

    controller = Controller(Recorder(args.dir, args.implicit_tls), hostname="127.0.0.1", port=args.port, **controller_kwargs, **kwargs)
    controller.start()
    print("ready", flush=True)
    try:
        signal.pause()  # until the test kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
