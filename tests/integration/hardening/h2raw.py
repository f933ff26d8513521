"""A raw HTTP/2 client for tests that must do what a polite gRPC stack never
does: end a stream inside a message, open more streams than the server
allows, stop reading, stop before the TLS handshake is over.

Frames are written by hand (RFC 9113 section 4) over an ssl socket that
negotiated ALPN h2. Request headers are HPACK literals without indexing
(RFC 7541 6.2.2), which any decoder accepts; response headers are decoded
with libnghttp2's own HPACK inflater through ctypes (Debian's python3 has no
h2 module, and the response may use Huffman codes and the dynamic table).
Every read is bounded by the socket timeout.
"""

import ctypes
import socket
import ssl
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

SETTINGS_HEADER_TABLE_SIZE = 1
SETTINGS_ENABLE_PUSH = 2
SETTINGS_MAX_CONCURRENT_STREAMS = 3
SETTINGS_INITIAL_WINDOW_SIZE = 4
SETTINGS_MAX_FRAME_SIZE = 5

NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 0x0, 0x1, 0x7, 0x8


def grpc_frame(msg, declared=None):
    """A gRPC length-prefixed message; declared overrides the length."""
    return b"\0" + struct.pack(">I", len(msg) if declared is None else declared) + msg


def grpc_messages(data):
    """The complete messages in a gRPC byte stream (a trailing part ignored)."""
    out, off = [], 0
    while off + 5 <= len(data):
        n = struct.unpack_from(">I", data, off + 1)[0]
        if off + 5 + n > len(data):
            break
        out.append(data[off + 5:off + 5 + n])
        off += 5 + n
    return out


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(headers):
    """Header block: each field a literal without indexing, new name, no
    Huffman coding."""
    out = b""
    for name, value in headers:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value
    return out


class _NV(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


class HpackDecoder:
    """nghttp2_hd_inflater (nghttp2.h) through ctypes."""
    _lib = None

    def __init__(self):
        if HpackDecoder._lib is None:
            lib = ctypes.CDLL("libnghttp2.so.14")
            lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
            lib.nghttp2_hd_inflate_hd2.argtypes = [
                ctypes.c_void_p, ctypes.POINTER(_NV), ctypes.POINTER(ctypes.c_int),
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
            lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
            lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
            HpackDecoder._lib = lib
        self.infl = ctypes.c_void_p()
        if self._lib.nghttp2_hd_inflate_new(ctypes.byref(self.infl)) != 0:
            raise RuntimeError("nghttp2_hd_inflate_new failed")

    def decode(self, block):
        lib = self._lib
        buf = ctypes.create_string_buffer(block, len(block))
        base, off, out = ctypes.addressof(buf), 0, []
        while True:
            nv, flags = _NV(), ctypes.c_int(0)
            rv = lib.nghttp2_hd_inflate_hd2(self.infl, ctypes.byref(nv), ctypes.byref(flags),
                                            base + off, len(block) - off, 1)
            if rv < 0:
                raise ValueError(f"HPACK decoding failed ({rv})")
            off += rv
            if flags.value & 0x02:  # NGHTTP2_HD_INFLATE_EMIT
                out.append((ctypes.string_at(nv.name, nv.namelen).decode(),
                            ctypes.string_at(nv.value, nv.valuelen).decode(errors="replace")))
            if flags.value & 0x01:  # NGHTTP2_HD_INFLATE_FINAL
                lib.nghttp2_hd_inflate_end_headers(self.infl)
                return out
            if rv == 0 and not flags.value & 0x02:
                raise ValueError("HPACK block truncated")

    def close(self):
        if self.infl:
            self._lib.nghttp2_hd_inflate_del(self.infl)
            self.infl = ctypes.c_void_p()


class Closed(Exception):
    """The server closed the connection."""


def tls_context(cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.headers = []     # the response headers, then the trailers
        self.data = b""
        self.ended = False    # END_STREAM seen
        self.reset = None     # RST_STREAM error code


class H2Conn:
    """One client connection. settings: our SETTINGS (id, value) pairs."""

    def __init__(self, host, port, server_name, cert=None, key=None, ca=None,
                 settings=((SETTINGS_ENABLE_PUSH, 0),), timeout=15, connection_window=None):
        self.ctx = tls_context(cert, key, ca)
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = self.ctx.wrap_socket(raw, server_hostname=server_name)
        if self.sock.selected_alpn_protocol() != "h2":
            raise AssertionError(f"ALPN: {self.sock.selected_alpn_protocol()!r}")
        self.authority = server_name
        self.buf = b""
        self.hpack = HpackDecoder()
        self.streams = {}
        self.next_sid = 1
        self.peer_settings = {}
        self.goaway = None
        self.sock.sendall(PREFACE + self.frame(SETTINGS, 0, 0, b"".join(
            struct.pack(">HI", k, v) for k, v in settings)))
        if connection_window:
            self.send_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", connection_window))

    @staticmethod
    def frame(ftype, flags, sid, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
            struct.pack(">I", sid) + payload

    def send_frame(self, ftype, flags, sid, payload):
        self.sock.sendall(self.frame(ftype, flags, sid, payload))

    def request(self, path, end_stream=False, extra=()):
        """Open a gRPC call on a new stream; returns its Stream."""
        sid = self.next_sid
        self.next_sid += 2
        hdrs = [(":method", "POST"), (":scheme", "https"), (":path", path),
                (":authority", self.authority), ("content-type", "application/grpc"),
                ("te", "trailers"), *extra]
        self.send_frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid,
                        hpack_literal(hdrs))
        self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def send_data(self, stream, data, end_stream=False):
        self.send_frame(DATA, END_STREAM if end_stream else 0, stream.sid, data)

    def _recv(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed by server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """Read one frame, keep what it says, answer SETTINGS and PING.
        Returns (type, flags, stream id, payload)."""
        hdr = self._recv(9)
        length = struct.unpack(">I", b"\0" + hdr[:3])[0]
        ftype, flags = hdr[3], hdr[4]
        sid = struct.unpack(">I", hdr[5:9])[0] & 0x7fffffff
        payload = self._recv(length)
        if ftype == HEADERS:
            block = payload
            if flags & PADDED:
                block = block[1:len(block) - block[0]]
            if flags & PRIORITY_FLAG:
                block = block[5:]
            while not flags & END_HEADERS:
                h2 = self._recv(9)
                if h2[3] != CONTINUATION:
                    raise AssertionError("HEADERS without CONTINUATION")
                more = self._recv(struct.unpack(">I", b"\0" + h2[:3])[0])
                block += more
                flags |= h2[4] & END_HEADERS
            fields = self.hpack.decode(block)
            st = self.streams.get(sid)
            if st:
                st.headers.extend(fields)
                st.ended = st.ended or bool(flags & END_STREAM)
        elif ftype == DATA:
            st = self.streams.get(sid)
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if st:
                st.data += payload
                st.ended = st.ended or bool(flags & END_STREAM)
        elif ftype == RST_STREAM:
            st = self.streams.get(sid)
            if st:
                st.reset = struct.unpack(">I", payload)[0]
        elif ftype == SETTINGS and not flags & ACK:
            for off in range(0, len(payload), 6):
                k, v = struct.unpack_from(">HI", payload, off)
                self.peer_settings[k] = v
            self.send_frame(SETTINGS, ACK, 0, b"")
        elif ftype == PING and not flags & ACK:
            self.send_frame(PING, ACK, 0, payload)
        elif ftype == GOAWAY:
            self.goaway = struct.unpack_from(">II", payload)
        return ftype, flags, sid, payload

    def read_until(self, pred, what="condition"):
        """Read frames until pred() is true; socket timeout bounds each read."""
        while not pred():
            try:
                self.read_frame()
            except socket.timeout:
                raise AssertionError(f"timed out waiting for {what}") from None
        return True

    def read_settings(self):
        """The server's first SETTINGS."""
        while True:
            ftype, flags, _, _ = self.read_frame()
            if ftype == SETTINGS and not flags & ACK:
                return dict(self.peer_settings)

    def wait_done(self, stream):
        self.read_until(lambda: stream.ended or stream.reset is not None,
                        f"the end of stream {stream.sid}")
        return stream

    @staticmethod
    def trailer(stream, name):
        vals = [v for k, v in stream.headers if k == name]
        return vals[-1] if vals else None

    def close(self):
        self.hpack.close()
        try:
            self.sock.close()
        except OSError:
            pass


def host_conn(test, controld, server_name):
    """A raw HTTP/2 connection to controld with the fleet's first host
    certificate (test.pki.mx1, as cptest's FleetTestCase has it), closed when
    the test ends."""
    conn = H2Conn(controld.host, controld.port, server_name, *test.pki.mx1, ca=test.pki.ca)
    test.addCleanup(conn.close)
    return conn
