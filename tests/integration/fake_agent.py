#!/usr/bin/env python3
"""A scripted interactive agent CLI, for tests/integration/test_wrap.sh.

It behaves like the coding agents `grapevine wrap` is made for: it turns
bracketed paste on (ESC[?2004h), turns its terminal's echo and line editing
off and does its own (so paste markers never show), prints a prompt
"agent> " and obeys the lines typed at it:

  say TO TEXT    prints "->relay:TO TEXT" on a line of its own
  block TO       prints a "->relay:TO <<<" ... ">>>" block
  fence [TO]     prints a fenced code block holding "->relay:TO ..." lines
                 (TO defaults to x): the wrapper must send nothing
  busy N         prints a line every 0.2 s for N seconds, reading nothing
  size           prints "size COLSxROWS" of its terminal
  exit N         exits with status N
  Relay message from SENDER [id8] [thread:T]: BODY
  Relay notice: TEXT
                 thinks (--think seconds), prints "got: <the line>"; a
                 message whose BODY starts with "ping" is answered with
                 "->relay:SENDER pong" after another think
  anything else  prints "you said: <the line>"

Ctrl-C (SIGINT from its terminal) prints "interrupted". Every line it
receives is appended, exactly as received, to the --log file, so a test can
tell what the agent got and that no line was split. Standard library only.
"""
import argparse
import os
import re
import signal
import sys
import termios
import time

RELAY_MSG = re.compile(
    r"^Relay message from (\S+) \[[0-9a-f]+\](?: \[thread:[^\]]*\])?: (.*)$")
PROMPT = b"agent> "


def out(text):
    os.write(1, text.encode() if isinstance(text, str) else text)


def say(line):
    out(line + "\n")


class Agent:
    def __init__(self, args):
        self.args = args
        self.fd = 0
        self.saved = None
        self.line = bytearray()
        self.esc = bytearray()  # an escape sequence under way
        self.paste = False

    def setup(self):
        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            t = termios.tcgetattr(self.fd)
            t[3] &= ~(termios.ICANON | termios.ECHO)  # lflag; ISIG stays
            t[6][termios.VMIN] = 1
            t[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, t)
        out(b"\x1b[?2004h")
        signal.signal(signal.SIGINT, self.on_sigint)
        if self.args.pidfile:
            with open(self.args.pidfile, "w") as f:
                f.write("%d %d\n" % (os.getpid(), os.getppid()))

    def restore(self):
        out(b"\x1b[?2004l")
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)

    def on_sigint(self, signum, frame):
        self.line.clear()
        out(b"^C\ninterrupted\n" + PROMPT)

    def log(self, text):
        if self.args.log:
            with open(self.args.log, "a", encoding="utf-8") as f:
                f.write(text + "\n")

    def feed(self, data):
        """Takes typed bytes; returns the exit status once told to exit."""
        for c in data:
            if self.esc:
                self.esc.append(c)
                if len(self.esc) == 2 and c != ord("["):
                    self.esc.clear()  # ESC x: dropped
                elif len(self.esc) > 2 and 0x40 <= c <= 0x7E:
                    seq, self.esc = bytes(self.esc), bytearray()
                    if seq == b"\x1b[200~":
                        self.paste = True
                    elif seq == b"\x1b[201~":
                        self.paste = False
                elif len(self.esc) > 32:
                    self.esc.clear()
                continue
            if c == 0x1B:
                self.esc.append(c)
            elif c in (0x0D, 0x0A) and not self.paste:
                out(b"\n")
                text = self.line.decode("utf-8", "replace")
                self.line.clear()
                rc = self.command(text)
                if rc is not None:
                    return rc
                out(PROMPT)
            elif c in (0x7F, 0x08):
                if self.line:
                    self.line.pop()
                    out(b"\b \b")
            elif c == 0x04 and not self.line:
                return 0
            elif c >= 0x20 or c == 0x09:
                self.line.append(c)
                out(bytes([c]))
        return None

    def command(self, text):
        self.log(text)
        words = text.split()
        if not words:
            return None
        cmd, rest = words[0], words[1:]
        if text.startswith("Relay message from ") or text.startswith(
                "Relay notice: "):
            time.sleep(self.args.think)
            say("got: " + text)
            m = RELAY_MSG.match(text)
            if m and m.group(2).startswith("ping"):
                time.sleep(self.args.think)
                say("->relay:%s pong" % m.group(1))
        elif cmd == "say" and len(rest) >= 2:
            say("->relay:%s %s" % (rest[0], text.split(None, 2)[2]))
        elif cmd == "block" and len(rest) == 1:
            say("->relay:%s <<<" % rest[0])
            say("first line of the block")
            say("  second line, indented")
            say(">>>")
        elif cmd == "fence":
            to = rest[0] if rest else "x"
            say("```")
            say("->relay:%s y" % to)
            say("->relay:%s <<<" % to)
            say("inside a fence")
            say(">>>")
            say("```")
        elif cmd == "busy" and len(rest) == 1:
            end = time.monotonic() + float(rest[0])
            n = 0
            while time.monotonic() < end:
                n += 1
                say("working %d" % n)
                time.sleep(0.2)
            say("done")
        elif cmd == "size":
            sz = os.get_terminal_size(self.fd)
            say("size %dx%d" % (sz.columns, sz.lines))
        elif cmd == "exit" and len(rest) == 1:
            return int(rest[0])
        else:
            say("you said: " + text)
        return None

    def run(self):
        self.setup()
        rc = 0
        try:
            say("fake agent ready")
            out(PROMPT)
            while True:
                data = os.read(self.fd, 4096)
                if not data:
                    break
                rc = self.feed(data)
                if rc is not None:
                    break
                rc = 0
        except OSError:
            rc = 1  # the terminal went away
        finally:
            try:
                self.restore()
            except OSError:
                pass
        return rc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log", help="append each received line to this file")
    p.add_argument("--pidfile", help="write 'PID PPID' here at start")
    p.add_argument("--think", type=float, default=0.5,
                   help="seconds a relay message takes (default 0.5)")
    sys.exit(Agent(p.parse_args()).run())


if __name__ == "__main__":
    main()
