"""
What modern clients need from the server, against the real server over
real sockets: personal eventing (XEP-0163) with avatars (XEP-0084), an
OMEMO device list and bundle (XEP-0384's use of PEP), bookmarks (XEP-0402,
and XEP-0049 private storage beside them, XEP-0402 §5), vCards with the
photo hash in presence (XEP-0054, XEP-0153), driven by slixmpp's own
plugins; bad input from a raw or misbehaving client.

Nothing a client does may make the server log at error level (the fixture
checks after the module).
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.clients import logout
from tests.integration.conftest import RunningServer, runAsync
from tests.integration.imclients import NS_CLIENT, imLogin, isPresence
from tests.integration.pepclients import (
    NS_AVATAR_DATA,
    NS_AVATAR_METADATA,
    NS_BOOKMARKS,
    NS_CAPS,
    NS_OMEMO,
    NS_PUBSUB,
    OMEMO_DEVICELIST,
    PEPClient,
    eventItems,
    iqError,
    isEvent,
    privateGet,
    privateSet,
    publishOptions,
)
from tests.integration.raw import RawStream
from tests.integration.test_im import addAccount, befriend, rawAnswer

pytestmark = pytest.mark.integration

NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_LEGACY_BOOKMARKS = "storage:bookmarks"

#: The answer to the ping with id ID (a result without payload).
PONG = rb"<iq[^>]*id=['\"]ID['\"][^>]*/>"

#: A tiny PNG (1x1, transparent).
AVATAR = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


async def pepOnline(server: RunningServer, name: str, **kwargs: Any) -> PEPClient:
    """
    Log C{name}@localhost in (password C{name}-pw) with the PEP plugins,
    and make it available with its capabilities known to the server.
    """
    client: PEPClient = await imLogin(
        server,
        f"{name}@localhost/{name}-device",
        f"{name}-pw",
        clientClass=lambda *a, **k: PEPClient(*a, **kwargs, **k),  # type: ignore[arg-type]
    )
    await client.available()
    return client


def omemoList(*devices: int) -> ET.Element:
    devicelist = ET.Element(f"{{{NS_OMEMO}}}list")
    for device in devices:
        ET.SubElement(devicelist, f"{{{NS_OMEMO}}}device", {"id": str(device)})
    return devicelist


def omemoBundle(device: int) -> ET.Element:
    bundle = ET.Element(f"{{{NS_OMEMO}}}bundle")
    prekey = ET.SubElement(bundle, f"{{{NS_OMEMO}}}signedPreKeyPublic", {"signedPreKeyId": "1"})
    prekey.text = base64.b64encode(hashlib.sha256(b"spk%d" % device).digest()).decode()
    ET.SubElement(bundle, f"{{{NS_OMEMO}}}identityKey").text = base64.b64encode(b"ik" * 16).decode()
    prekeys = ET.SubElement(bundle, f"{{{NS_OMEMO}}}prekeys")
    for index in range(1, 101):
        key = ET.SubElement(prekeys, f"{{{NS_OMEMO}}}preKeyPublic", {"preKeyId": str(index)})
        key.text = base64.b64encode(hashlib.sha256(b"%d-%d" % (device, index)).digest()).decode()
    return bundle


def test_avatarNotifiedToInterestedContactsOnly(server: RunningServer) -> None:
    """
    XEP-0084 over XEP-0163 §4.3: alice publishes her avatar (data, then
    metadata) with slixmpp's avatar plugin; her contact bob, whose client
    advertises urn:xmpp:avatar:metadata+notify, gets the metadata
    notification and then fetches the data by id; her contact carol, whose
    client has no such interest, and the stranger dave (who has it) get
    nothing (§4.3.1: only contacts with a presence subscription and
    +notify). Own resources with +notify are told too (§4.3.1).
    """
    for name in ("ava", "ben", "cleo", "dan"):
        addAccount(server, name)

    async def run() -> None:
        alice = await pepOnline(server, "ava")
        bob = await pepOnline(server, "ben")
        carol = await pepOnline(server, "cleo", avatars=False)
        dave = await pepOnline(server, "dan")
        await befriend(alice, bob)
        await befriend(alice, carol)
        avatarID = hashlib.sha1(AVATAR).hexdigest()  # noqa: S324 - XEP-0084 ids are SHA-1
        await alice.plugin["xep_0084"].publish_avatar(AVATAR, timeout=10)
        await alice.plugin["xep_0084"].publish_avatar_metadata(
            {"id": avatarID, "type": "image/png", "bytes": len(AVATAR)}, timeout=10
        )
        notification = await bob.inMessages.take(isEvent(alice.bare, NS_AVATAR_METADATA), what="the avatar metadata")
        (item,) = eventItems(notification, NS_AVATAR_METADATA) or []
        assert item.get("id") == avatarID
        info = item.find(f"{{{NS_AVATAR_METADATA}}}metadata/{{{NS_AVATAR_METADATA}}}info")
        assert info is not None and info.get("bytes") == str(len(AVATAR)), ET.tostring(item)
        own = await alice.inMessages.take(isEvent(alice.bare, NS_AVATAR_METADATA), what="the own notification")
        assert eventItems(own, NS_AVATAR_METADATA)

        data = await bob.plugin["xep_0084"].retrieve_avatar(JID(alice.bare), avatarID, timeout=10)
        value = data.xml.find(f"{{{NS_PUBSUB}}}pubsub/{{{NS_PUBSUB}}}items/{{{NS_PUBSUB}}}item/{{{NS_AVATAR_DATA}}}data")
        assert value is not None and base64.b64decode(value.text or "") == AVATAR

        await carol.inMessages.absent(isEvent(alice.bare, NS_AVATAR_METADATA), within=0.5, what="a notification")
        await dave.inMessages.absent(isEvent(alice.bare, NS_AVATAR_METADATA), within=0.1, what="a notification")
        # XEP-0163 default access model "presence": the stranger may not
        # read it either, and is not told that it exists (item-not-found,
        # XEP-0060 §6.5.9.11, as for a node or account that does not).
        with pytest.raises(IqError) as refused:
            await dave.items(alice.bare, NS_AVATAR_METADATA)
        assert iqError(refused.value) == ("item-not-found", None)
        for client in (alice, bob, carol, dave):
            await logout(client)

    runAsync(run())


def test_lastItemOnLogin(server: RunningServer) -> None:
    """
    XEP-0163 §4.3.4 (last published item): a contact that comes online with
    +notify for a node gets its last item, once the server learnt its
    interests from its capabilities (XEP-0115).
    """
    for name in ("eve", "fay"):
        addAccount(server, name)

    async def run() -> None:
        eve = await pepOnline(server, "eve")
        fay = await pepOnline(server, "fay")
        await befriend(eve, fay)
        await eve.publish(NS_AVATAR_METADATA, ET.Element(f"{{{NS_AVATAR_METADATA}}}metadata"), "none")
        await fay.inMessages.take(isEvent(eve.bare, NS_AVATAR_METADATA))
        await logout(fay)
        fay = await pepOnline(server, "fay")
        last = await fay.inMessages.take(isEvent(eve.bare, NS_AVATAR_METADATA), what="the last item on login")
        assert [item.get("id") for item in eventItems(last, NS_AVATAR_METADATA) or []] == ["none"]
        for client in (eve, fay):
            await logout(client)

    runAsync(run())


def test_omemoDeviceListAndBundle(server: RunningServer) -> None:
    """
    XEP-0384 on XEP-0163: a device list and a bundle published with
    publish-options pubsub#access_model=open (XEP-0060 §7.1.5) are fetched
    by a contact and, the nodes being open, by a stranger; a contact with
    devicelist+notify is notified. Publishing again with options that do
    not match the node is refused with conflict / precondition-not-met
    (§7.1.5), and the node keeps its item.
    """
    for name in ("gil", "hal", "ivy"):
        addAccount(server, name)

    async def run() -> None:
        gil = await pepOnline(server, "gil")
        hal = await pepOnline(server, "hal", interests=(OMEMO_DEVICELIST,))
        ivy = await pepOnline(server, "ivy")
        await befriend(gil, hal)
        openNode = publishOptions(access_model="open")
        await gil.publish(OMEMO_DEVICELIST, omemoList(1234), "current", openNode)
        bundleNode = f"{NS_OMEMO}.bundles:1234"
        await gil.publish(bundleNode, omemoBundle(1234), "current", openNode)

        notified = await hal.inMessages.take(isEvent(gil.bare, OMEMO_DEVICELIST), what="the device list")
        (item,) = eventItems(notified, OMEMO_DEVICELIST) or []
        assert item.find(f"{{{NS_OMEMO}}}list/{{{NS_OMEMO}}}device").get("id") == "1234"  # type: ignore[union-attr]

        for reader in (hal, ivy):
            (devices,) = await reader.items(gil.bare, OMEMO_DEVICELIST)
            assert devices.find(f"{{{NS_OMEMO}}}list/{{{NS_OMEMO}}}device").get("id") == "1234"  # type: ignore[union-attr]
            (bundle,) = await reader.items(gil.bare, bundleNode, max_items=1)
            keys = bundle.findall(f"{{{NS_OMEMO}}}bundle/{{{NS_OMEMO}}}prekeys/{{{NS_OMEMO}}}preKeyPublic")
            assert len(keys) == 100

        with pytest.raises(IqError) as refused:
            await gil.publish(OMEMO_DEVICELIST, omemoList(1, 2), "current", publishOptions(access_model="presence"))
        assert iqError(refused.value) == ("conflict", "precondition-not-met")
        (devices,) = await ivy.items(gil.bare, OMEMO_DEVICELIST)
        assert len(devices.findall(f"{{{NS_OMEMO}}}list/{{{NS_OMEMO}}}device")) == 1
        for client in (gil, hal, ivy):
            await logout(client)

    runAsync(run())


def test_bookmarksSurviveReconnect(server: RunningServer) -> None:
    """
    XEP-0402 §3: a bookmark published to urn:xmpp:bookmarks:1 with the
    publish-options of §3.2 (whitelist, persist_items, max_items max) is
    there after logging out and in again; nobody else may read it (the
    whitelist model: not-allowed / closed-node, XEP-0060 §6.5.9.8); XEP-0402 §5: a client still on
    private XML storage (XEP-0049, storage:bookmarks) sees the same
    conference.
    """
    for name in ("jo", "kim"):
        addAccount(server, name)
    room = "lounge@conference.localhost"

    async def run() -> None:
        jo = await pepOnline(server, "jo", interests=(NS_BOOKMARKS,))
        kim = await pepOnline(server, "kim", interests=(NS_BOOKMARKS,))
        await befriend(jo, kim)
        conference = ET.Element(f"{{{NS_BOOKMARKS}}}conference", {"name": "The Lounge", "autojoin": "true"})
        ET.SubElement(conference, f"{{{NS_BOOKMARKS}}}nick").text = "jo"
        options = publishOptions(
            persist_items="true", max_items="max", send_last_published_item="never", access_model="whitelist"
        )
        await jo.publish(NS_BOOKMARKS, conference, room, options)
        await logout(jo)

        jo = await pepOnline(server, "jo", interests=(NS_BOOKMARKS,))
        (item,) = await jo.items(jo.bare, NS_BOOKMARKS)
        assert item.get("id") == room
        stored = item.find(f"{{{NS_BOOKMARKS}}}conference")
        assert stored is not None and stored.get("name") == "The Lounge"
        assert stored.findtext(f"{{{NS_BOOKMARKS}}}nick") == "jo"

        with pytest.raises(IqError) as refused:
            await kim.items(jo.bare, NS_BOOKMARKS)
        assert iqError(refused.value) == ("not-allowed", "closed-node")
        await kim.inMessages.absent(isEvent(jo.bare, NS_BOOKMARKS), within=0.3, what="someone else's bookmarks")

        # slixmpp's own XEP-0048 plugin, on private storage.
        jo.register_plugin("xep_0048")
        result = await jo.plugin["xep_0048"].get_bookmarks(method="xep_0049", timeout=10)
        (legacy,) = result["private"]["bookmarks"]["conferences"]
        assert (str(legacy["jid"]), legacy["name"], legacy["nick"], legacy["autojoin"]) == (room, "The Lounge", "jo", True)

        # XEP-0402 §5.2: a XEP-0048 client replaces the list: the new room
        # is published (PEP clients are notified), the removed one
        # retracted, and a URL bookmark stays in private storage.
        replacement = ET.Element(f"{{{NS_LEGACY_BOOKMARKS}}}storage")
        ET.SubElement(
            replacement, f"{{{NS_LEGACY_BOOKMARKS}}}conference",
            {"jid": "games@conference.localhost", "name": "Games", "autojoin": "false"},
        )
        ET.SubElement(replacement, f"{{{NS_LEGACY_BOOKMARKS}}}url", {"name": "Home", "url": "https://example.org/"})
        await privateSet(jo, replacement)
        added = await jo.inMessages.take(isEvent(jo.bare, NS_BOOKMARKS), what="the new room's notification")
        assert [i.get("id") for i in eventItems(added, NS_BOOKMARKS) or []] == ["games@conference.localhost"]
        (item,) = await jo.items(jo.bare, NS_BOOKMARKS)
        assert item.get("id") == "games@conference.localhost"
        storage = await privateGet(jo, NS_LEGACY_BOOKMARKS, "storage")
        assert [c.get("jid") for c in storage.findall(f"{{{NS_LEGACY_BOOKMARKS}}}conference")] == [
            "games@conference.localhost"
        ]
        assert storage.find(f"{{{NS_LEGACY_BOOKMARKS}}}url") is not None
        for client in (jo, kim):
            await logout(client)

    runAsync(run())


def test_vcardRoundTripWithPhotoHash(server: RunningServer) -> None:
    """
    XEP-0054 §3.2/§3.1: a vCard with a photo set with slixmpp's vCard plugin
    comes back the same; XEP-0153 §3.1: the contact then sees the SHA-1 of
    the photo in <x xmlns='vcard-temp:x:update'><photo/></x> of the user's
    presence; XEP-0054 §3.3: the contact can fetch the vCard.
    """
    for name in ("lea", "max"):
        addAccount(server, name)

    async def run() -> None:
        lea = await pepOnline(server, "lea")
        mx = await pepOnline(server, "max")
        await befriend(lea, mx)
        vcard = lea.plugin["xep_0054"].make_vcard()
        vcard["FN"] = "Lea Example"
        vcard["PHOTO"]["TYPE"] = "image/png"
        vcard["PHOTO"]["BINVAL"] = AVATAR
        await lea.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
        mine = await lea.plugin["xep_0054"].get_vcard(JID(lea.bare), local=False, cached=False, timeout=10)
        assert mine["vcard_temp"]["FN"] == "Lea Example"
        assert mine["vcard_temp"]["PHOTO"]["BINVAL"] == AVATAR

        lea.presence(status="new photo")
        presence = await mx.inPresences.take(isPresence(lea.full, None, "new photo"), what="lea's presence")
        photo = presence.xml.findtext(f"{{{NS_VCARD_UPDATE}}}x/{{{NS_VCARD_UPDATE}}}photo")
        assert photo == hashlib.sha1(AVATAR).hexdigest()  # noqa: S324 - XEP-0153 names SHA-1
        theirs = await mx.plugin["xep_0054"].get_vcard(JID(lea.bare), local=False, cached=False, timeout=10)
        assert theirs["vcard_temp"]["FN"] == "Lea Example"
        for client in (lea, mx):
            await logout(client)

    runAsync(run())


def test_badInput(server: RunningServer) -> None:
    """
    Bad input gets the XEP-0060 and XEP-0054 errors and changes nothing:
    an item over [im] max_pep_item_bytes (not-acceptable / payload-too-big,
    §7.1.3.5), an unknown publish option (§7.1.5), a publish without a node
    (bad-request / nodeid-required, §7.1.3.3), two items in one publish
    (bad-request / invalid-payload, §7.1.3.6), a vCard over max_vcard_bytes
    (XEP-0054: not-acceptable), a pubsub request with an unknown child
    (bad-request or feature-not-implemented).
    """
    addAccount(server, "ned")

    async def run() -> None:
        ned = await pepOnline(server, "ned")
        big = ET.Element("{urn:example:big}data")
        big.text = "x" * (200 * 1024)
        with pytest.raises(IqError) as refused:
            await ned.publish("urn:example:big", big, "1")
        assert iqError(refused.value) == ("not-acceptable", "payload-too-big")
        with pytest.raises(IqError) as refused:
            await ned.items(ned.bare, "urn:example:big")
        assert iqError(refused.value)[0] == "item-not-found"

        with pytest.raises(IqError) as refused:
            await ned.publish("urn:example:small", ET.Element("{urn:example:small}x"), "1", {"pubsub#no_such_option": "1"})
        assert iqError(refused.value)[0] in ("conflict", "bad-request", "not-acceptable")

        vcard = ned.plugin["xep_0054"].make_vcard()
        vcard["PHOTO"]["BINVAL"] = b"\0" * (100 * 1024)
        with pytest.raises(IqError) as refused:
            await ned.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
        assert iqError(refused.value)[0] == "not-acceptable"
        await logout(ned)

    runAsync(run())

    raw = RawStream(server.starttlsPort)
    try:
        raw.login(server.caFile, "ned@localhost", "ned-pw")
        raw.send(f"<iq type='set' id='nonode'><pubsub xmlns='{NS_PUBSUB}'><publish><item/></publish></pubsub></iq>")
        assert b"nodeid-required" in rawAnswer(raw, "nonode")
        raw.send(
            f"<iq type='set' id='two'><pubsub xmlns='{NS_PUBSUB}'><publish node='urn:example:two'>"
            "<item id='a'><x xmlns='urn:example:two'/></item><item id='b'><x xmlns='urn:example:two'/></item>"
            "</publish></pubsub></iq>"
        )
        answer = rawAnswer(raw, "two")
        assert b"type='error'" in answer or b'type="error"' in answer, answer
        assert b"bad-request" in answer, answer
        raw.send(f"<iq type='get' id='odd'><pubsub xmlns='{NS_PUBSUB}'><frobnicate node='x'/></pubsub></iq>")
        answer = rawAnswer(raw, "odd")
        assert b"bad-request" in answer or b"feature-not-implemented" in answer, answer
    finally:
        raw.close()


def test_capsHashThatDoesNotVerifyIsNotTrusted(server: RunningServer) -> None:
    """
    XEP-0115 §5.4 and §9.3 (cache poisoning): a client announces a caps
    'ver' whose disco#info answer does not hash to it, with
    urn:xmpp:avatar:metadata+notify; the server must not cache it: a
    second client announcing the same 'ver' but answering without that
    interest gets no avatar notification, while the first one, whose
    answer serves for its own session only, does.
    """
    for name in ("oto", "pam", "rue"):
        addAccount(server, name)
    bogus = base64.b64encode(hashlib.sha1(b"not the features").digest()).decode()

    def liar(account: str, password: str, interested: bool) -> RawStream:
        raw = RawStream(server.starttlsPort)
        raw.login(server.caFile, account, password, resource="liar")
        raw.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        rawAnswer(raw, "r1")
        raw.send(
            f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='urn:example:liar' ver='{bogus}'/></presence>"
        )
        query = raw.readUntil(rb"<iq[^>]*type=['\"]get['\"][^>]*>.*?</iq>")
        found = re.search(rb"<iq[^>]*id=['\"]([^'\"]+)['\"]", query[query.rfind(b"<iq"):])
        assert found is not None, query
        features = "<feature var='http://jabber.org/protocol/disco#info'/>"
        if interested:
            features += f"<feature var='{NS_AVATAR_METADATA}+notify'/>"
        raw.send(
            f"<iq type='result' to='localhost' id='{found.group(1).decode()}'>"
            f"<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:liar#{bogus}'>"
            f"<identity category='client' type='pc'/>{features}</query></iq>"
        )
        raw.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        raw.readUntil(PONG.replace(b"ID", b"p1"))
        return raw

    async def befriendAll() -> None:
        oto = await pepOnline(server, "oto")
        pam = await pepOnline(server, "pam")
        rue = await pepOnline(server, "rue")
        await befriend(oto, pam)
        await befriend(oto, rue)
        for client in (pam, rue):
            await logout(client)
        await logout(oto)

    runAsync(befriendAll())
    first = liar("pam@localhost", "pam-pw", interested=True)
    second = liar("rue@localhost", "rue-pw", interested=False)
    try:

        async def publish() -> None:
            oto = await pepOnline(server, "oto")
            await oto.publish(NS_AVATAR_METADATA, ET.Element(f"{{{NS_AVATAR_METADATA}}}metadata"), "x1")
            await logout(oto)

        runAsync(publish())
        first.readUntil(rb"urn:xmpp:avatar:metadata")
        second.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        answer = second.readUntil(PONG.replace(b"ID", b"p2"))
        assert b"pubsub#event" not in answer, answer
    finally:
        first.close()
        second.close()


def test_discoOfAccount(server: RunningServer) -> None:
    """
    XEP-0163 §6.1: the account's bare JID has the identity pubsub/pep, for
    its owner and for a contact; its owner also sees its vCard, private
    storage and XEP-0402 §5 compatibility features.
    """
    addAccount(server, "sol")
    addAccount(server, "tia")

    async def run() -> None:
        sol = await pepOnline(server, "sol")
        tia = await pepOnline(server, "tia")
        await befriend(sol, tia)
        for asker in (sol, tia):
            info = await asker.plugin["xep_0030"].get_info(jid=JID(sol.bare), local=False, timeout=10)
            identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
            assert ("pubsub", "pep") in identities, identities
            assert f"{NS_PUBSUB}#publish" in info["disco_info"]["features"]
        own = await sol.plugin["xep_0030"].get_info(jid=JID(sol.bare), local=False, timeout=10)
        features = set(own["disco_info"]["features"])
        assert {"vcard-temp", "jabber:iq:private", f"{NS_BOOKMARKS}#compat", "jabber:iq:roster"} <= features, features
        for client in (sol, tia):
            await logout(client)

    runAsync(run())


def test_presenceOfOwnClientsUntouched(server: RunningServer) -> None:
    """
    Presence stanzas with caps pass unchanged to contacts (XEP-0115 §4):
    the server reads the <c/> element, it does not strip it.
    """
    addAccount(server, "uma")
    addAccount(server, "vic")

    async def run() -> None:
        uma = await pepOnline(server, "uma")
        vic = await pepOnline(server, "vic")
        await befriend(uma, vic)
        uma.presence(status="with caps")
        presence = await vic.inPresences.take(isPresence(uma.full, None, "with caps"))
        assert presence.xml.find(f"{{{NS_CAPS}}}c") is not None
        assert presence.xml.get("from") == uma.full and presence.xml.tag == f"{{{NS_CLIENT}}}presence"
        for client in (uma, vic):
            await logout(client)

    runAsync(run())


def test_lastItemToNewSubscriber(server: RunningServer) -> None:
    """
    XEP-0163 §4.3.4: a PEP service MUST send the last published item to
    all new subscribers: once wes approves xan's subscription, xan's
    client (with +notify) gets the last item of wes's node, with a
    XEP-0203 delay saying when it was published.
    """
    for name in ("wes", "xan"):
        addAccount(server, name)

    async def run() -> None:
        wes = await pepOnline(server, "wes")
        xan = await pepOnline(server, "xan")
        await wes.publish(NS_AVATAR_METADATA, ET.Element(f"{{{NS_AVATAR_METADATA}}}metadata"), "now")
        xan.presence(wes.bare, "subscribe")
        await wes.inPresences.take(isPresence(xan.bare, "subscribe"))
        wes.presence(xan.bare, "subscribed")
        last = await xan.inMessages.take(isEvent(wes.bare, NS_AVATAR_METADATA), what="the last item of a new subscription")
        assert [item.get("id") for item in eventItems(last, NS_AVATAR_METADATA) or []] == ["now"]
        delay = last.xml.find("{urn:xmpp:delay}delay")
        assert delay is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", delay.get("stamp") or "")
        for client in (wes, xan):
            await logout(client)

    runAsync(run())


def test_strangerCannotTellAccountsApart(server: RunningServer) -> None:
    """
    Whether an account exists is never told to someone not subscribed to
    its presence: disco#info of an existing account and of a missing one
    both give service-unavailable, items of a node both item-not-found;
    an open node (an OMEMO bundle) is still fetched by name. Huge
    max_items values are refused with bad-request (nothing is logged at
    error: the module fixture checks).
    """
    addAccount(server, "yul")
    addAccount(server, "zed")
    raw = RawStream(server.starttlsPort)
    try:

        async def publish() -> None:
            yul = await pepOnline(server, "yul")
            await yul.publish(NS_AVATAR_METADATA, ET.Element(f"{{{NS_AVATAR_METADATA}}}metadata"), "x")
            await yul.publish(
                f"{NS_OMEMO}.bundles:7", omemoBundle(7), "current", options=publishOptions(access_model="open")
            )
            await logout(yul)

        runAsync(publish())
        raw.login(server.caFile, "zed@localhost", "zed-pw", resource="raw")

        def ask(iqID: str, to: str, payload: str) -> bytes:
            raw.send(f"<iq type='get' id='{iqID}' to='{to}'>{payload}</iq>")
            answer = rawAnswer(raw, iqID)
            found = re.search(rb"<error.*</error>", answer, re.S)
            return found.group(0) if found is not None else answer

        info = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        items = f"<pubsub xmlns='{NS_PUBSUB}'><items node='{NS_AVATAR_METADATA}'/></pubsub>"
        for name, payload in (("i", info), ("n", items)):
            existing = ask(name + "1", "yul@localhost", payload)
            missing = ask(name + "2", "nobody@localhost", payload)
            assert existing == missing and b"<error" in existing, (existing, missing)
        assert b"service-unavailable" in ask("i3", "yul@localhost", info)
        assert b"item-not-found" in ask("n3", "yul@localhost", items)
        bundle = ask("b1", "yul@localhost", f"<pubsub xmlns='{NS_PUBSUB}'><items node='{NS_OMEMO}.bundles:7'/></pubsub>")
        assert b"type='result'" in bundle or b'type="result"' in bundle, bundle
        for digits in (20, 5000):
            huge = f"<pubsub xmlns='{NS_PUBSUB}'><items node='{NS_AVATAR_METADATA}' max_items='{'9' * digits}'/></pubsub>"
            assert b"bad-request" in ask(f"h{digits}", "yul@localhost", huge)
    finally:
        raw.close()
