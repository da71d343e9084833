#!/usr/bin/env python3
"""A WebRTC participant for geofence's tests: aiortc against geofence-test-sfu.

Joins a meeting, opens a data channel, sends "hello N from NAME" every interval and prints one
JSON object per line on stdout for every event (see README.md). Exit status: 0 when it ran to
the end (whether or not ICE connected: that is for the test to judge), 2 on a signaling error.

Commands on stdin, one a line: `restart` (new transport, new server ufrag), `leave` (leave and
finish now). End of input is not a command.
"""

import argparse
import asyncio
import json
import os
import stat
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

START = time.monotonic()
CONNECTED_STATES = ("connected", "completed")


def emit(event, **fields):
    # `wall` (Unix seconds) lets a test compare an event with a moment of its own.
    print(json.dumps({"event": event, "t": round(time.monotonic() - START, 3), "wall": round(time.time(), 6),
                      **fields}), flush=True)


class SignalingError(Exception):
    pass


def post(url, body=None):
    """POST JSON, return the JSON answer; SignalingError with the SFU's reason otherwise."""
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(url, data=data, method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raise SignalingError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as e:
        raise SignalingError(f"{url}: {e}") from None


class Participant:
    def __init__(self, args):
        self.args = args
        self.sent = 0
        self.received = {}
        self.ice_connected = False
        self.ice_state = "new"
        self.pc = None
        self.channel = None
        self.left = False
        self.media_frames = 0
        self.done = asyncio.Event()

    async def connect(self, path):
        """A new peer connection, answered by the SFU at `path` (join or restart).

        aiortc cannot restart ICE on a live connection, so a restart is a new peer connection:
        the SFU sees a new DTLS fingerprint and gives it a new transport with a new ufrag.
        """
        if self.pc is not None:
            await self.pc.close()
        # No ICE servers: the default would ask a public STUN server, and tests stay offline.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        channel = pc.createDataChannel("chat")
        if self.args.audio:
            # Silence, Opus-encoded: enough for the SFU to see media on the transport.
            pc.addTrack(AudioStreamTrack())
        self.channel = None

        @pc.on("iceconnectionstatechange")
        def on_ice():
            if pc is not self.pc:
                return
            self.ice_state = pc.iceConnectionState
            self.ice_connected |= self.ice_state in CONNECTED_STATES
            emit("ice", state=self.ice_state)

        @pc.on("track")
        def on_track(track):
            emit("track", kind=track.kind)
            asyncio.ensure_future(self.consume(track))

        @channel.on("open")
        def on_open():
            if pc is self.pc:
                self.channel = channel
                emit("connected", label=channel.label)

        @channel.on("message")
        def on_message(message):
            text = message if isinstance(message, str) else message.decode(errors="replace")
            sender = text.split(":", 1)[0] if ":" in text else "?"
            self.received[sender] = self.received.get(sender, 0) + 1
            emit("received", text=text, **{"from": sender})

        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}
        answer = await asyncio.to_thread(post, f"{self.args.sfu}{path}", offer)
        if not isinstance(answer, dict) or answer.get("type") != "answer" or "sdp" not in answer:
            raise SignalingError(f"{path}: not an answer: {answer!r}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        emit("answer", path=path.split("?")[0], ufrag=server_ufrag(answer["sdp"]))

    async def consume(self, track):
        """Counts the decoded frames of a track the SFU sends us (other participants' media)."""
        try:
            while True:
                await track.recv()
                self.media_frames += 1
        except MediaStreamError:
            pass

    async def send_loop(self):
        while not self.done.is_set():
            if self.channel is not None and self.channel.readyState == "open":
                self.sent += 1
                self.channel.send(f"hello {self.sent} from {self.args.name}")
                emit("sent", n=self.sent)
            await asyncio.sleep(self.args.send_every)

    async def restart(self):
        await self.connect(f"/restart?participant={self.args.name}")
        emit("restarted")

    async def leave(self):
        await asyncio.to_thread(post, f"{self.args.sfu}/leave?participant={self.args.name}")
        self.left = True
        emit("left")

    def summary(self):
        emit("summary", sent=self.sent, received=self.received, ice_connected=self.ice_connected,
             ice_state=self.ice_state, media_frames=self.media_frames)


def server_ufrag(sdp):
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.split(":", 1)[1].strip()
    return None


async def read_commands(participant):
    # The event loop can only watch pipes, sockets and terminals; /dev/null or a file means no
    # commands.
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) and sys.stdin.isatty()):
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.decode(errors="replace").strip()
        if command == "restart":
            await participant.restart()
        elif command == "leave":
            await participant.leave()
            participant.done.set()
            return
        elif command:
            emit("error", message=f"unknown command {command!r}")


async def run(args):
    participant = Participant(args)
    await participant.connect(f"/join?meeting={args.meeting}&participant={args.name}")
    tasks = [asyncio.create_task(participant.send_loop()), asyncio.create_task(read_commands(participant))]
    if args.restart_after is not None:
        async def restart_later():
            await asyncio.sleep(args.restart_after)
            await participant.restart()
        tasks.append(asyncio.create_task(restart_later()))
    try:
        # Until the duration is up or `leave` came; a failed task (signaling) ends it at once.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.duration
        pending = {asyncio.create_task(participant.done.wait()), *tasks}
        tasks.extend(pending)
        while pending and not participant.done.is_set() and loop.time() < deadline:
            finished, pending = await asyncio.wait(pending, timeout=deadline - loop.time(),
                                                   return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()
        participant.done.set()
        if not participant.left and not args.stay:
            await participant.leave()
    finally:
        for task in tasks:
            task.cancel()
        participant.summary()
        if participant.pc is not None:
            await participant.pc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sfu", required=True, help="signaling base URL, e.g. http://10.0.0.1:8080")
    parser.add_argument("--meeting", required=True)
    parser.add_argument("--name", required=True, help="participant name, unique on the SFU")
    parser.add_argument("--send-every", type=float, default=0.2, metavar="SECONDS")
    parser.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                        help="run this long, then leave and print the summary")
    parser.add_argument("--restart-after", type=float, metavar="SECONDS",
                        help="restart once after this long: a new peer connection, POST /restart")
    parser.add_argument("--stay", action="store_true", help="do not POST /leave at the end")
    parser.add_argument("--audio", action="store_true", help="also send an audio track (silence)")
    args = parser.parse_args()
    args.sfu = args.sfu.rstrip("/")
    try:
        asyncio.run(run(args))
    except SignalingError as e:
        emit("error", message=str(e))
        sys.exit(2)


if __name__ == "__main__":
    main()
