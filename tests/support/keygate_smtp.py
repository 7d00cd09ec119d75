"""SMTP sink for keygate's tests, loaded by aiosmtpd:

    PYTHONPATH=tests/support python3 -m aiosmtpd -n -l 127.0.0.1:PORT \
        -c keygate_smtp.RejectingMailbox DIR

Stores every accepted message in the Maildir DIR (files under DIR/new/), like
aiosmtpd.handlers.Mailbox, and refuses for good (550) every recipient whose
address starts with "reject", so tests can see a permanent rejection. A
recipient whose address starts with "slow" is accepted after three seconds,
so tests can see a send that outlasts a short lease.
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class RejectingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("reject"):
            return "550 5.1.1 <%s>: recipient rejected by the test server" % address
        if address.lower().startswith("slow"):
            await asyncio.sleep(3)
        envelope.rcpt_tos.append(address)
        return "250 OK"
