"""
Instant messaging against the real server over real sockets: rosters,
presence subscriptions and presence (RFC 6121), offline messages
(XEP-0160), carbons (XEP-0280) and blocking (XEP-0191), driven by slixmpp
(and a raw client for what slixmpp would not send).

Most tests share the module's server, each with accounts of its own; the
offline limit and the restart have a server of their own. Nothing a client
does may make the server log at error level (checked by the fixtures, and
by the bad-input tests themselves).
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slixmpp import JID

from tests.integration.clients import logout
from tests.integration.conftest import RunningServer, runAsync, serveAliceAndBob
from tests.integration.imclients import (
    NS_BLOCKING_ERRORS,
    NS_CLIENT,
    NS_DELAY,
    IMClient,
    carbonOf,
    errorCondition,
    imLogin,
    isError,
    isMessage,
    isPresence,
    isPush,
    kindOf,
    pushedItem,
    sender,
)
from tests.integration.raw import RawStream
from tests.integration.test_external import makeCertificate, register

pytestmark = pytest.mark.integration

#: The offline limit of the server of L{small}.
MAX_OFFLINE = 3


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """
    A server of its own, with a small offline message limit, for the tests
    that fill a queue or restart the server.
    """
    yield from serveAliceAndBob(
        tmp_path_factory.mktemp("im-small"), f"[im]\nmax_offline_messages = {MAX_OFFLINE}\n"
    )


# --- helpers -----------------------------------------------------------------


def addAccount(server: RunningServer, name: str) -> str:
    """
    A password account C{name}@localhost with the password C{name}-pw.
    """
    account = f"{name}@localhost"
    server.addUser(account, f"{name}-pw")
    return account


def addCertificateAccount(server: RunningServer, name: str, directory: Path) -> tuple[str, Path, Path]:
    """
    A certificate-only account with one registered certificate (named
    "Phone").

    @return: the account, the certificate and its key.
    """
    account = f"{name}@localhost"
    result = server.cli("user", "add", account, "--no-password")
    assert result.returncode == 0, result.stderr
    certPath, keyPath, _ = makeCertificate(directory, name, [account])
    register(server, account, "Phone", certPath)
    return account, certPath, keyPath


async def online(
    server: RunningServer,
    jid: str,
    password: str = "",
    status: str | None = None,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> IMClient:
    """
    Log in, ask for the roster (an interested resource) and send initial
    presence; return once the server echoed it (RFC 6121 §4.2.2), so that
    it has been handled.
    """
    client = await imLogin(server, jid, password, certfile=certfile, keyfile=keyfile)
    await client.becomeInterested()
    client.presence(status=status)
    await client.inPresences.take(isPresence(client.full, None, status), what="the echo of its own presence")
    return client


async def befriend(a: IMClient, b: IMClient) -> None:
    """
    The full subscription handshake between two available, interested
    clients; return once both see both the subscription and the other's
    presence, with nothing else in their inboxes.
    """
    a.presence(b.bare, "subscribe")
    await b.inPresences.take(isPresence(a.bare, "subscribe"))
    b.presence(a.bare, "subscribed")
    await b.rosterPushes.take(isPush(a.bare, "from"))
    b.presence(a.bare, "subscribe")
    await a.inPresences.take(isPresence(b.bare, "subscribe"))
    a.presence(b.bare, "subscribed")
    await a.rosterPushes.take(isPush(b.bare, "both"))
    await b.rosterPushes.take(isPush(a.bare, "both"))
    await a.inPresences.take(isPresence(b.full))
    await b.inPresences.take(isPresence(a.full))
    for client in (a, b):
        client.inPresences.clear()
        client.inMessages.clear()
        client.rosterPushes.clear()


def assertNoErrorLogged(server: RunningServer) -> None:
    assert server.errorLines() == [], server.logText()


def rawAnswer(raw: RawStream, iqID: str) -> bytes:
    """
    The server's answer to the iq C{iqID} sent on C{raw}.
    """
    data = raw.readUntil(rf"<iq[^>]*id=['\"]{iqID}['\"][^>]*>.*?</iq>")
    found = re.search(rf"<iq[^>]*id=['\"]{iqID}['\"][^>]*>.*?</iq>".encode(), data, re.S)
    assert found is not None
    return found.group(0)


# --- subscriptions and presence ------------------------------------------------


def test_subscriptionHandshakeBetweenCertificateUsers(server: RunningServer, tmp_path: Path) -> None:
    """
    RFC 6121 §3.1 (§3.1.2 to §3.1.6), between two people who log in with
    client certificates (SASL EXTERNAL): rose subscribes to sam, sam
    approves and subscribes back, rose approves. Each step gives the roster
    pushes of §3.1 (none+ask, to, both; from, from+ask, both), both rosters
    end with subscription both, each sees the other's presence once
    subscribed (§3.1.5), and unavailable presence when the other logs out
    (§4.5.2).
    """
    rose, roseCert, roseKey = addCertificateAccount(server, "rose", tmp_path)
    sam, samCert, samKey = addCertificateAccount(server, "sam", tmp_path)

    async def run() -> None:
        r = await online(server, f"{rose}/laptop", certfile=roseCert, keyfile=roseKey)
        s = await online(server, f"{sam}/phone", certfile=samCert, keyfile=samKey)

        # §3.1.2: the request is routed from the bare JID, and rose's roster
        # gets the item in state None + Pending Out.
        r.presence(sam, "subscribe")
        push = await r.rosterPushes.take(isPush(sam, "none", "subscribe"), what="push of sam with ask='subscribe'")
        assert pushedItem(push)["jid"] == sam
        request = await s.inPresences.take(isPresence(rose, "subscribe"))
        assert sender(request) == rose
        # §3.1.3: sam's roster shows nothing for a request not yet answered.
        await s.rosterPushes.absent(lambda iq: True, within=0.3, what="roster push before sam answered")

        # §3.1.5: sam approves: his roster shows rose as "from"; rose gets
        # the approval, "to" (§3.1.6), and sam's presence.
        s.presence(rose, "subscribed")
        await s.rosterPushes.take(isPush(rose, "from"))
        approval = await r.inPresences.take(isPresence(sam, "subscribed"))
        assert sender(approval) == sam
        await r.rosterPushes.take(isPush(sam, "to"))
        await r.inPresences.take(isPresence(s.full), what="sam's presence after the approval")

        # And back.
        s.presence(rose, "subscribe")
        await s.rosterPushes.take(isPush(rose, "from", "subscribe"))
        await r.inPresences.take(isPresence(sam, "subscribe"))
        r.presence(sam, "subscribed")
        await r.rosterPushes.take(isPush(sam, "both"))
        await s.inPresences.take(isPresence(rose, "subscribed"))
        await s.rosterPushes.take(isPush(rose, "both"))
        await s.inPresences.take(isPresence(r.full), what="rose's presence after the approval")

        # RFC 6121 §2.1.3: the rosters, as a roster get returns them.
        roseItems = await r.rosterItems()
        samItems = await s.rosterItems()
        assert roseItems[sam]["subscription"] == "both" and "ask" not in roseItems[sam], roseItems
        assert samItems[rose]["subscription"] == "both" and "ask" not in samItems[rose], samItems

        # §4.5.2: rose leaves; sam sees her go. Then she comes back (sam's
        # presence is given to her new session, §4.3), and sam leaves.
        roseFull = r.full
        await logout(r)
        await s.inPresences.take(isPresence(roseFull, "unavailable"), what="rose's unavailable presence")
        r = await online(server, f"{rose}/tablet", certfile=roseCert, keyfile=roseKey)
        await s.inPresences.take(isPresence(r.full), what="rose's presence from her new session")
        await r.inPresences.take(isPresence(s.full), what="sam's presence for rose's new session")
        samFull = s.full
        await logout(s)
        await r.inPresences.take(isPresence(samFull, "unavailable"), what="sam's unavailable presence")
        await logout(r)

    runAsync(run())


def test_initialPresenceAndProbe(server: RunningServer) -> None:
    """
    RFC 6121 §4.2.2 and §4.3: initial presence of a new resource goes to the
    contacts subscribed to the user (and to its other resources), not to an
    account without a subscription; the new resource gets the current
    presence (with its status) of the contact it is subscribed to, as the
    answer to the probe of §4.3.1.
    """
    pia = addAccount(server, "pia")
    quinn = addAccount(server, "quinn")
    rex = addAccount(server, "rex")

    async def run() -> None:
        one = await online(server, f"{pia}/one", "pia-pw")
        q = await online(server, f"{quinn}/desk", "quinn-pw", status="at my desk")
        stranger = await online(server, f"{rex}/den", "rex-pw")
        await befriend(one, q)

        two = await imLogin(server, f"{pia}/two", "pia-pw")
        await two.becomeInterested()
        two.presence(status="second device")
        await q.inPresences.take(isPresence(two.full, None, "second device"), what="the new resource's presence")
        await one.inPresences.take(isPresence(two.full, None, "second device"))
        probed = await two.inPresences.take(isPresence(q.full), what="quinn's presence for the new resource")
        assert probed.xml.findtext(f"{{{NS_CLIENT}}}status") == "at my desk"
        await two.inPresences.take(isPresence(one.full), what="the presence of the account's other resource")
        await stranger.inPresences.absent(isPresence(pia), within=0.5, what="presence to a non-contact")
        for client in (one, two, q, stranger):
            await logout(client)

    runAsync(run())


# --- offline messages ------------------------------------------------------------


def test_offlineMessageDeliveredWithDelay(server: RunningServer) -> None:
    """
    XEP-0160 §2 and XEP-0203: a chat message for an account with no
    available resource is stored without an error to the sender, and given
    to the account's next resource when it sends initial presence (not
    before), with <delay xmlns='urn:xmpp:delay' from='localhost'/> stamped
    when it was stored. XEP-0160 §3 / RFC 6121 §8.5.2.2.1: a headline for
    an offline account is not stored (and gets no error either).
    """
    olga = addAccount(server, "olga")
    oscar = addAccount(server, "oscar")

    async def run() -> None:
        o = await online(server, f"{olga}/home", "olga-pw")
        before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        o.say(oscar, "news for you", kind="headline")
        o.say(oscar, "while you were out")
        await o.inMessages.absent(
            lambda m: kindOf(m) == "error", within=0.5, what="error for an offline recipient"
        )
        after = datetime.datetime.now(datetime.UTC)

        r = await imLogin(server, f"{oscar}/laptop", "oscar-pw")
        await r.inMessages.absent(lambda m: True, within=0.5, what="message before initial presence")
        r.presence()
        message = await r.inMessages.take(isMessage(o.full, "while you were out"), what="the stored message")
        delay = message.xml.find(f"{{{NS_DELAY}}}delay")
        assert delay is not None, str(message)
        assert delay.get("from") == "localhost"
        stamp = message["delay"]["stamp"]
        assert before - datetime.timedelta(seconds=1) <= stamp <= after + datetime.timedelta(seconds=1), stamp
        await r.inMessages.absent(lambda m: m.xml.findtext(f"{{{NS_CLIENT}}}body") == "news for you", within=0.5)
        await logout(r)

        # Taken from the store: the next login gets nothing again.
        again = await online(server, f"{oscar}/laptop", "oscar-pw")
        await again.inMessages.absent(lambda m: True, within=0.5, what="message delivered twice")
        for client in (again, o):
            await logout(client)

    runAsync(run())


def test_offlineQueueFull(small: RunningServer) -> None:
    """
    [im] max_offline_messages (XEP-0160 §3, RFC 6121 §8.5.2.2.1): once an
    offline account holds the limit, one more message is answered
    service-unavailable and not stored; the stored ones are delivered,
    oldest first (XEP-0160 §2), at the next initial presence.
    """
    fay = addAccount(small, "fay")
    gus = addAccount(small, "gus")
    bodies = [f"message {n}" for n in range(1, MAX_OFFLINE + 2)]

    async def run() -> None:
        f = await online(small, f"{fay}/home", "fay-pw")
        for body in bodies:
            f.say(gus, body)
        refused = await f.inMessages.take(isError(bodies[-1]), what="the error for one message too many")
        assert errorCondition(refused) == "service-unavailable", str(refused)
        await f.inMessages.absent(lambda m: kindOf(m) == "error", within=0.5, what="error for a message kept")

        g = await online(small, f"{gus}/work", "gus-pw")
        delivered = await g.inMessages.collect(
            lambda m: sender(m) == f.full and kindOf(m) == "chat", MAX_OFFLINE, what="stored messages"
        )
        assert [m.xml.findtext(f"{{{NS_CLIENT}}}body") for m in delivered] == bodies[:-1]
        await g.inMessages.absent(isMessage(f.full, bodies[-1]), within=0.5, what="the refused message")
        for client in (f, g):
            await logout(client)

    runAsync(run())


# --- carbons ---------------------------------------------------------------------


def test_carbons(server: RunningServer) -> None:
    """
    XEP-0280 §6 and §7: with carbons enabled on both of cara's resources, a
    message cole sends to cara/one reaches cara/two as a <received/>
    carbon, and a message cara/one sends to cole reaches cara/two as a
    <sent/> carbon (from cara's bare JID, the original forwarded whole);
    the sending resource gets no copy of its own message, and a resource
    that did not enable carbons gets none.
    """
    cara = addAccount(server, "cara")
    cole = addAccount(server, "cole")

    async def run() -> None:
        one = await online(server, f"{cara}/one", "cara-pw")
        two = await online(server, f"{cara}/two", "cara-pw")
        three = await online(server, f"{cara}/three", "cara-pw")
        c = await online(server, f"{cole}/desk", "cole-pw")
        for client in (one, two):
            await client.plugin["xep_0280"].enable(timeout=10)

        c.say(one.full, "to one")
        await one.inMessages.take(isMessage(c.full, "to one"))
        carbon = await two.inMessages.take(lambda m: carbonOf(m, "received") is not None, what="a received carbon")
        assert sender(carbon) == cara, str(carbon)
        forwarded = carbonOf(carbon, "received")
        assert forwarded is not None
        assert forwarded.get("from") == c.full and forwarded.get("to") == one.full, str(carbon)
        assert forwarded.findtext(f"{{{NS_CLIENT}}}body") == "to one"
        await two.inMessages.absent(
            isMessage(c.full, "to one"), within=0, what="a direct copy to the other resource"
        )

        one.say(cole, "from one")
        await c.inMessages.take(isMessage(one.full, "from one"))
        carbon = await two.inMessages.take(lambda m: carbonOf(m, "sent") is not None, what="a sent carbon")
        assert sender(carbon) == cara, str(carbon)
        forwarded = carbonOf(carbon, "sent")
        assert forwarded is not None
        assert forwarded.get("from") == one.full and forwarded.get("to") == cole, str(carbon)
        assert forwarded.findtext(f"{{{NS_CLIENT}}}body") == "from one"

        def anyCarbon(m: object) -> bool:
            return carbonOf(m, "sent") is not None or carbonOf(m, "received") is not None

        await one.inMessages.absent(anyCarbon, within=0.5, what="carbon to the sending resource")
        await three.inMessages.absent(anyCarbon, within=0, what="carbon to a resource without carbons")
        for client in (one, two, three, c):
            await logout(client)

    runAsync(run())


# --- blocking --------------------------------------------------------------------


def test_blocking(server: RunningServer) -> None:
    """
    XEP-0191 §3.3 and §3.4: once blair blocks ash, ash sees blair go
    unavailable; ash's messages to blair are answered service-unavailable
    and not delivered; blair's messages to ash are refused with
    not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/>; neither
    gets the other's presence, not even a new resource of ash the answer to
    its probe. After unblocking, ash gets blair's current
    presence and messages and presence flow again.
    """
    ash = addAccount(server, "ash")
    blair = addAccount(server, "blair")

    async def run() -> None:
        a = await online(server, f"{ash}/home", "ash-pw")
        b = await online(server, f"{blair}/home", "blair-pw", status="blair here")
        await befriend(a, b)

        await b.plugin["xep_0191"].block(JID(ash), timeout=10)
        await a.inPresences.take(isPresence(b.full, "unavailable"), what="blair's unavailable after the block")

        a.say(blair, "hello?")
        refused = await a.inMessages.take(isError("hello?"), what="the error for a message to a blocker")
        assert errorCondition(refused) == "service-unavailable", str(refused)
        b.say(ash, "psst")
        refused = await b.inMessages.take(isError("psst"), what="the error for a message to a blocked JID")
        assert errorCondition(refused) == "not-acceptable", str(refused)
        assert refused.xml.find(f"{{{NS_CLIENT}}}error/{{{NS_BLOCKING_ERRORS}}}blocked") is not None, str(refused)

        a.presence(status="ash changed")
        b.presence(status="blair changed")
        await a.inPresences.take(isPresence(a.full, None, "ash changed"))
        await b.inPresences.take(isPresence(b.full, None, "blair changed"))
        await b.inMessages.absent(isMessage(ash, "hello?"), within=0.5, what="message from a blocked JID")
        await b.inPresences.absent(isPresence(ash), within=0, what="presence from a blocked JID")
        await a.inPresences.absent(isPresence(blair), within=0, what="presence from the blocker")
        await a.inMessages.absent(isMessage(blair, "psst"), within=0, what="message to a blocked JID")
        # The answer to the probe of a new resource of ash (RFC 6121 §4.3),
        # which the server sends on blair's behalf, is withheld too.
        second = await online(server, f"{ash}/second", "ash-pw")
        await second.inPresences.absent(isPresence(blair), within=0.5, what="blair's presence for a new resource")
        await logout(second)

        await b.plugin["xep_0191"].unblock(JID(ash), timeout=10)
        await a.inPresences.take(
            isPresence(b.full, None, "blair changed"), what="blair's presence after unblocking"
        )
        a.presence(status="ash again")
        await b.inPresences.take(isPresence(a.full, None, "ash again"))
        a.say(blair, "can you hear me now")
        await b.inMessages.take(isMessage(a.full, "can you hear me now"))
        for client in (a, b):
            await logout(client)

    runAsync(run())


def test_blockedSenderOfflineMessageNotDelivered(server: RunningServer) -> None:
    """
    XEP-0191 §3.3 ("the user's server MUST NOT deliver any XML stanzas from
    the contact to the user"), with XEP-0160: a message ned stored for nia
    while she was offline is not delivered once nia has blocked ned, even
    though it was stored before the block; another sender's stored message
    still is.
    """
    ned = addAccount(server, "ned")
    nia = addAccount(server, "nia")
    ora = addAccount(server, "ora")

    async def run() -> None:
        n = await online(server, f"{ned}/home", "ned-pw")
        o = await online(server, f"{ora}/home", "ora-pw")
        n.say(nia, "from the blocked one")
        await asyncio.sleep(0.2)
        o.say(nia, "from a friend")
        for client in (n, o):
            await client.inMessages.absent(lambda m: kindOf(m) == "error", within=0.3)

        # nia logs in without presence (no offline delivery yet), blocks ned,
        # then becomes available.
        i = await imLogin(server, f"{nia}/phone", "nia-pw")
        await i.plugin["xep_0191"].block(JID(ned), timeout=10)
        i.presence()
        await i.inMessages.take(isMessage(o.full, "from a friend"), what="the other stored message")
        await i.inMessages.absent(
            isMessage(ned, "from the blocked one"), within=0.3, what="stored message from a JID blocked since"
        )
        for client in (n, o, i):
            await logout(client)

    runAsync(run())


# --- revoked certificates ----------------------------------------------------------


def test_revokedCertificateSessionGoesUnavailable(server: RunningServer, tmp_path: Path) -> None:
    """
    RFC 6121 §4.5.2 with XEP-0257: when carol's certificate is revoked
    (`xmppcert cert revoke`, taken up at once through the control channel),
    her session ends with the stream error reset, and dave, subscribed to
    her, gets unavailable presence from her full JID on her behalf.
    """
    carol, carolCert, carolKey = addCertificateAccount(server, "carol", tmp_path)
    dave = addAccount(server, "dave")

    async def run() -> None:
        c = await online(server, f"{carol}/phone", certfile=carolCert, keyfile=carolKey)
        d = await online(server, f"{dave}/desk", "dave-pw")
        await befriend(c, d)
        carolFull = c.full
        result = await asyncio.to_thread(server.cli, "cert", "revoke", carol, "Phone")
        assert result.returncode == 0, result.stderr
        await d.inPresences.take(
            isPresence(carolFull, "unavailable"), timeout=10, what="carol's unavailable presence"
        )
        await asyncio.wait_for(asyncio.shield(c.ended), 10)
        assert "reset" in c.streamErrors
        await logout(d)

    runAsync(run())


# --- bad input -------------------------------------------------------------------


def test_rosterSetErrors(server: RunningServer) -> None:
    """
    RFC 6121 §2.3.3: a roster set with two items is bad-request; an item
    whose jid is not a valid JID, or is a full JID, is jid-malformed; one
    for the user's own JID is not-allowed. None changes the roster, and the
    stream goes on.
    """
    rae = addAccount(server, "rae")
    raw = RawStream(server.starttlsPort)
    try:
        raw.login(server.caFile, "rae", "rae-pw", resource="raw")
        raw.received = b""
        cases = [
            ("two", "<item jid='ann@localhost'/><item jid='ben@localhost'/>", "bad-request"),
            ("invalid", "<item jid='foo@bar@localhost'/>", "jid-malformed"),
            ("emptylocal", "<item jid='@localhost'/>", "jid-malformed"),
            ("full", "<item jid='ann@localhost/phone'/>", "jid-malformed"),
            ("own", f"<item jid='{rae}'/>", "not-allowed"),
        ]
        for iqID, items, condition in cases:
            raw.send(f"<iq type='set' id='{iqID}'><query xmlns='jabber:iq:roster'>{items}</query></iq>")
            answer = rawAnswer(raw, iqID)
            assert b"type='error'" in answer or b'type="error"' in answer, answer
            assert f"<{condition} ".encode() in answer or f"<{condition}/>".encode() in answer, answer
        raw.send("<iq type='get' id='get1'><query xmlns='jabber:iq:roster'/></iq>")
        answer = rawAnswer(raw, "get1")
        assert b"type='result'" in answer or b'type="result"' in answer, answer
        assert b"<item" not in answer, answer
    finally:
        raw.close()
    assertNoErrorLogged(server)


def test_subscriptionToUnknownAccount(server: RunningServer) -> None:
    """
    RFC 6121 §3.1.3 and §8.5.1: a subscription request to an account that
    does not exist is dropped (or answered unsubscribed), never with an
    error that tells the account does not exist, and nothing fails on the
    server (no line at error level); the stream keeps working, and the
    user's roster shows the request pending (§3.1.2).
    """
    uma = addAccount(server, "uma")

    async def run() -> None:
        u = await online(server, f"{uma}/home", "uma-pw")
        u.presence("ghost@localhost", "subscribe")
        await u.rosterPushes.take(isPush("ghost@localhost", "none", "subscribe"))
        await u.inPresences.absent(
            lambda p: kindOf(p) not in (None, "unsubscribed"), within=1.0, what="answer to a subscription request"
        )
        u.presence("ghost@localhost", "probe")
        assert await u.plugin["xep_0199"].ping(JID("localhost"), timeout=10) is not None
        await u.inPresences.absent(lambda p: kindOf(p) == "error", within=0.3, what="error presence")
        await logout(u)

    runAsync(run())
    assertNoErrorLogged(server)


def test_presenceFloodIsLimited(server: RunningServer) -> None:
    """
    [im] presence_rate / presence_burst: a client that sends 500 presence
    stanzas at once reaches its contact with only a few of them (the rest
    is dropped, logged once at info), while another contact's presence and
    messages still reach the same user promptly.
    """
    flo = addAccount(server, "flo")
    wes = addAccount(server, "wes")
    ola = addAccount(server, "ola")
    sent = 500

    async def run() -> None:
        w = await online(server, f"{wes}/desk", "wes-pw")
        f = await online(server, f"{flo}/setup", "flo-pw")
        o = await online(server, f"{ola}/desk", "ola-pw")
        await befriend(f, w)
        await befriend(o, w)
        await logout(f)
        await w.inPresences.take(isPresence(f"{flo}/setup", "unavailable"))

        raw = RawStream(server.starttlsPort)
        try:
            await asyncio.to_thread(raw.login, server.caFile, "flo", "flo-pw", "flood")
            started = time.monotonic()
            flood = "<presence/>" + "".join(f"<presence><status>{n}</status></presence>" for n in range(1, sent))
            await asyncio.to_thread(raw.send, flood)
            o.presence(status="calm")
            o.say(wes, "still here")
            await w.inPresences.take(
                isPresence(o.full, None, "calm"), timeout=5, what="the other contact's presence"
            )
            await w.inMessages.take(isMessage(o.full, "still here"), timeout=5, what="the other contact's message")
            assert time.monotonic() - started < 5
            await w.inPresences.take(isPresence(f"{flo}/flood"), what="some presence from the flooder")
            await asyncio.sleep(1.5)
            received = len(w.inPresences.matching(isPresence(f"{flo}/flood"))) + 1
            assert received < 100, f"{received} of {sent} flooded presence stanzas reached the contact"
        finally:
            raw.close()
        for client in (w, o):
            await logout(client)

    runAsync(run())
    assert "sends presence faster than" in server.logText()
    assertNoErrorLogged(server)


# --- persistence and roster versioning ----------------------------------------------


def test_rosterSurvivesRestartAndVersioning(small: RunningServer) -> None:
    """
    RFC 6121 §2 and §2.6: the roster (subscription both, name, group) is
    kept in the store across a restart, and so are offline messages
    (XEP-0160); a roster get with the current 'ver' gets an empty result
    (§2.6.3), one with an older 'ver' the whole roster with a new 'ver'.
    """
    xena = addAccount(small, "xena")
    yuri = addAccount(small, "yuri")

    state: dict[str, str] = {}

    async def before() -> None:
        x = await online(small, f"{xena}/a", "xena-pw")
        y = await online(small, f"{yuri}/b", "yuri-pw")
        await befriend(x, y)
        await x.rosterSet(yuri, name="Yuri", groups=("Friends",))
        push = await x.rosterPushes.take(lambda iq: pushedItem(iq).get("name") == "Yuri")
        state["ver"] = push.xml.find("{jabber:iq:roster}query").get("ver")
        # RFC 6121 §2.6.3, before the restart already.
        assert await x.rosterGet(state["ver"]) is None
        await logout(x)
        y.say(xena, "before the restart")
        await y.inMessages.absent(lambda m: kindOf(m) == "error", within=0.5)
        await logout(y)

    runAsync(before())
    small.stop()
    small.start()

    async def after() -> None:
        x = await imLogin(small, f"{xena}/a", "xena-pw")
        items = await x.rosterItems()
        assert items[yuri]["subscription"] == "both", items
        assert items[yuri].get("name") == "Yuri" and items[yuri]["groups"] == ["Friends"], items
        assert await x.rosterGet(state["ver"]) is None, "a get with the current ver must get an empty result"
        older = await x.rosterGet("0")
        assert older is not None and older.get("ver") == state["ver"], older
        x.presence()
        message = await x.inMessages.take(
            isMessage(yuri, "before the restart"), what="the message stored before the restart"
        )
        assert message.xml.find(f"{{{NS_DELAY}}}delay") is not None
        y = await imLogin(small, f"{yuri}/b", "yuri-pw")
        assert (await y.rosterItems())[xena]["subscription"] == "both"
        for client in (x, y):
            await logout(client)

    runAsync(after())
