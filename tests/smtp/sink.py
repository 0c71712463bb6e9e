"""A real SMTP server for the tests (aiosmtpd): stores each message it accepts as a file.

    python sink.py --dir DIR --port-file FILE [--cert PEM --key PEM [--implicit-tls]]
                   [--defer N] [--user NAME --password SECRET]

With --cert and --key it offers STARTTLS and refuses mail before it (or, with --implicit-tls,
speaks TLS from the first byte). --defer N answers the first N messages with 451 (try again
later). With --user and --password it requires AUTH (over TLS). Each accepted message is
written to DIR/<n>.eml with the envelope recipient in an X-Envelope-To line first, and its
decoded plain-text and HTML parts to DIR/<n>.txt and DIR/<n>.html (for scripts without a
MIME parser). The chosen port
is written to FILE once the server listens. Stops when its standard input closes (or, with
--forever, when it is killed).
"""

import argparse
import email
import email.policy
import os
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, defer):
        self.directory = directory
        self.defer = defer
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if self.defer > 0:
            self.defer -= 1
            return "451 4.3.0 try again later"
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:04}.eml")
        head = "".join(f"X-Envelope-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos)
        with open(path + ".part", "wb") as out:
            out.write(head.encode())
            out.write(envelope.original_content or envelope.content)
        os.replace(path + ".part", path)
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        for kind, extension in (("plain", ".txt"), ("html", ".html")):
            part = message.get_body(preferencelist=(kind,))
            with open(path[:-4] + extension, "w") as out:
                out.write(part.get_content() if part else "")
        return "250 2.0.0 stored"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--defer", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--forever", action="store_true")
    args = parser.parse_args()

    context = None
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok)

    options = {}
    if args.user:
        options.update(authenticator=authenticate, auth_required=True)
    if context is not None and not args.implicit_tls:
        options.update(tls_context=context, require_starttls=True)
    port = free_port()
    controller = Controller(
        Sink(args.dir, args.defer),
        hostname="127.0.0.1",
        port=port,
        ssl_context=context if args.implicit_tls else None,
        server_hostname="localhost",
        **options,
    )
    controller.start()
    with open(args.port_file + ".part", "w") as out:
        out.write(str(port))
    os.replace(args.port_file + ".part", args.port_file)
    if args.forever:
        threading.Event().wait()
    else:
        sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
