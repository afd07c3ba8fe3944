#!/usr/bin/env python3
"""Generates the Wireshark dissector wireshark/fleetwire.lua from the spec's registries.

The header layout (§4.1), the kinds (§4.3), the codecs (§9.1), the HELLO fields (§5.2),
the error codes (§12.4) and the preface (§3) are read from spec/fleetwire-v1.md, so the
dissector cannot drift from the spec: CI runs `python3 wireshark/generate.py --check`,
which fails when the committed dissector differs from what this script makes.

    python3 wireshark/generate.py           # rewrite wireshark/fleetwire.lua
    python3 wireshark/generate.py --check   # exit 1 if it is stale
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec" / "fleetwire-v1.md"
OUT = ROOT / "wireshark" / "fleetwire.lua"

# Header fields of the §4.1 table and their display-filter names. A field the spec adds
# and this map lacks stops the generator: the dissector is then updated on purpose.
HEADER_ABBREV = {
    "Version": "version",
    "Kind": "kind",
    "X": "flags.x",
    "N": "flags.never_compress",
    "Cod": "flags.codec",
    "R": "flags.reserved",
    "Hnt": "flags.hint",
    "Payload Length": "length",
    "Destination Node": "route.node",
    "Service": "route.service",
    "Channel": "route.channel",
    "Source Node": "source",
}


def fail(why):
    sys.exit(f"generate.py: {why} (spec/fleetwire-v1.md changed shape?)")


def section(text, heading):
    """The body of the section whose heading starts with `heading`."""
    m = re.search(r"^#+ " + re.escape(heading) + r".*?$", text, re.M)
    if not m:
        fail(f"no section {heading!r}")
    rest = text[m.end():]
    end = re.search(r"^#+ ", rest, re.M)
    return rest[: end.start()] if end else rest


def table(body):
    """The rows of the first markdown table in `body`, as lists of stripped cells."""
    rows = []
    fenced = False
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r"-+", c) for c in cells):
            continue
        rows.append(cells)
    if len(rows) < 2:
        fail("table not found")
    return rows[1:]  # without the heading row


def bits_mask(bits):
    """`byte 1, bit 7 (`0x80`)` or `byte 0, bits 7–4` → (byte, width, mask)."""
    m = re.fullmatch(r"bytes? (\d+)(?:–(\d+))?(?:, bits? (\d+)(?:–(\d+))?)?(?: \(`0x[0-9A-Fa-f]+`\))?(?:, u\d+)?", bits)
    if not m:
        fail(f"cannot read header bits {bits!r}")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else first
    width = last - first + 1
    if m.group(3) is None:
        return first, width, 0
    hi = int(m.group(3))
    lo = int(m.group(4)) if m.group(4) else hi
    mask = sum(1 << b for b in range(lo, hi + 1))
    return first, width, mask


def parse(text):
    spec = {}
    m = re.search(r"preface `((?:0x[0-9A-F]{2} ?)+)`", section(text, "3. Connection preface"))
    if not m:
        fail("preface bytes not found")
    spec["preface"] = [int(b, 16) for b in m.group(1).split()]

    header = []
    for name, bits, _meaning in table(section(text, "4.1 Layout")):
        if name not in HEADER_ABBREV:
            fail(f"header field {name!r} has no display-filter name")
        byte, width, mask = bits_mask(bits)
        header.append((name, HEADER_ABBREV[name], byte, width, mask))
    spec["header"] = header

    kinds = {}
    for value, kind, scope, _sec in table(section(text, "4.3 Kind")):
        if value.isdigit():
            kinds[int(value)] = (kind, scope)
    spec["kinds"] = kinds

    codecs = {}
    for cod, codec, _fmt in table(section(text, "9.1 Codecs")):
        codecs[int(cod)] = codec
    spec["codecs"] = codecs

    hello = []
    roles, codec_bits = {}, {}
    for offset, size, field, rule in table(section(text, "5.2 HELLO")):
        name = field.strip("`")
        size = int(size) if size.isdigit() else None
        hello.append((int(offset), size, name))
        if name == "role":
            roles = {int(v): r for v, r in re.findall(r"(\d+) = (\w+)", rule)}
        if name == "codecs":
            codec_bits = {int(b): c for b, c in re.findall(r"bit (\d) = (\w+)", rule)}
    if not roles or not codec_bits:
        fail("HELLO role or codecs values not found")
    spec["hello"], spec["roles"], spec["codec_bits"] = hello, roles, codec_bits

    codes = {}
    for code, name, scope, _meaning in table(section(text, "12.4 Registry")):
        codes[int(code, 16)] = (name, scope)
    spec["codes"] = codes
    return spec


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_map(entries):
    return "{\n" + "".join(f"  [{k}] = {lua_str(v)},\n" for k, v in entries) + "}"


def header_fields(prefix, var, spec):
    """ProtoFields of a header under `prefix`; the Lua table `var` lists them in order."""
    lines = [f"local {var} = {{}}"]
    for name, abbrev, byte, width, mask in spec["header"]:
        ftype = {1: "uint8", 2: "uint16"}[width]
        vs = {"kind": "KINDS", "flags.codec": "CODECS"}.get(abbrev, "nil")
        base = "base.HEX" if bin(mask).count("1") > 1 and abbrev.startswith("flags.") and vs == "nil" else "base.DEC"
        mask_s = f"0x{mask:02X}" if mask else "nil"
        lines.append(
            f"{var}[#{var} + 1] = {{ byte = {byte}, width = {width}, field = "
            f"ProtoField.{ftype}({lua_str(prefix + abbrev)}, {lua_str(name)}, {base}, {vs}, {mask_s}) }}"
        )
    return "\n".join(lines)


def render(spec):
    kinds = sorted(spec["kinds"].items())
    codecs = dict(spec["codecs"])
    codecs.setdefault(3, "reserved")
    out = []
    w = out.append
    w("-- Fleetwire dissector for Wireshark. GENERATED by wireshark/generate.py from")
    w("-- spec/fleetwire-v1.md (§3 preface, §4.1 header, §4.3 kinds, §5.2 HELLO, §9.1 codecs,")
    w("-- §12.4 error codes): do not edit; run `python3 wireshark/generate.py`.")
    w("--")
    w("-- Load: wireshark -X lua_script:wireshark/fleetwire.lua (or copy it into the personal")
    w("-- plugins folder). Decodes TCP on the port of the `fleetwire.port` preference (7400),")
    w("-- any TCP stream that starts with the preface (heuristic), and TLS with ALPN")
    w("-- fleetwire/1 once the keys are logged (tls.keylog_file, see SSLKEYLOGFILE).")
    w("")
    w('local fw = Proto("fleetwire", "Fleetwire")')
    w("")
    w("local PREFACE = ByteArray.new(" + lua_str("".join(f"{b:02X}" for b in spec["preface"])) + ")")
    w("local KINDS = " + lua_map((k, v[0]) for k, v in kinds))
    w("local ROUTED = {" + ", ".join(f"[{k}] = true" for k, v in kinds if v[1] == "routed") + "}")
    w("local CODECS = " + lua_map(sorted(codecs.items())))
    w("local ROLES = " + lua_map(sorted(spec["roles"].items())))
    w("local CODES = " + lua_map((k, v[0]) for k, v in sorted(spec["codes"].items())))
    w("")
    w(header_fields("fleetwire.", "HEADER", spec))
    w(header_fields("fleetwire.error.header.", "ERROR_HEADER", spec))
    w("")
    w("local HELLO = {}")
    for offset, size, name in spec["hello"]:
        if size is None:
            w(f'local hello_ext = ProtoField.bytes("fleetwire.hello.{name}", {lua_str(name)})')
            w(f"local HELLO_FIXED = {offset}")
            continue
        ftype = {1: "uint8", 2: "uint16", 4: "uint32"}[size]
        vs = "ROLES" if name == "role" else "nil"
        base = "base.HEX" if name in ("codecs", "hello_flags") else "base.DEC"
        w(f"HELLO[#HELLO + 1] = {{ offset = {offset}, size = {size}, name = {lua_str(name)}, field = "
          f"ProtoField.{ftype}({lua_str('fleetwire.hello.' + name)}, {lua_str(name)}, {base}, {vs}) }}")
    w("local CODEC_BITS = {}")
    codecs_offset = next(o for o, _s, n in spec["hello"] if n == "codecs")
    for bit, name in sorted(spec["codec_bits"].items()):
        w(f"CODEC_BITS[#CODEC_BITS + 1] = ProtoField.bool({lua_str('fleetwire.hello.codecs.' + name)}, "
          f"{lua_str(name)}, 8, nil, 0x{1 << bit:02X})")
    w(f"local CODECS_OFFSET = {codecs_offset}")
    w("")
    w(TEMPLATE)
    return "\n".join(out)


TEMPLATE = r'''local f = {
  preface = ProtoField.bytes("fleetwire.preface", "Preface"),
  payload = ProtoField.bytes("fleetwire.payload", "Payload"),
  ping_id = ProtoField.uint64("fleetwire.ping.id", "id"),
  ping_timestamp = ProtoField.uint64("fleetwire.ping.timestamp", "timestamp"),
  pong_id = ProtoField.uint64("fleetwire.pong.id", "id"),
  pong_timestamp = ProtoField.uint64("fleetwire.pong.timestamp", "timestamp"),
  pong_hold_us = ProtoField.uint32("fleetwire.pong.hold_us", "hold_us"),
  goaway_code = ProtoField.uint16("fleetwire.goaway.code", "code", base.HEX, CODES),
  goaway_delivered = ProtoField.uint64("fleetwire.goaway.delivered", "delivered"),
  goaway_reason = ProtoField.string("fleetwire.goaway.reason", "reason", base.UNICODE),
  credit_packets = ProtoField.uint32("fleetwire.credit.packets", "packets"),
  credit_bytes = ProtoField.uint32("fleetwire.credit.bytes", "bytes"),
  error_code = ProtoField.uint16("fleetwire.error.code", "code", base.HEX, CODES),
  error_reason = ProtoField.string("fleetwire.error.reason", "reason", base.UNICODE),
  malformed = ProtoField.string("fleetwire.malformed", "Malformed"),
}
local all = {}
for _, v in pairs(f) do all[#all + 1] = v end
for _, h in ipairs(HEADER) do all[#all + 1] = h.field end
for _, h in ipairs(ERROR_HEADER) do all[#all + 1] = h.field end
for _, h in ipairs(HELLO) do all[#all + 1] = h.field end
for _, b in ipairs(CODEC_BITS) do all[#all + 1] = b end
all[#all + 1] = hello_ext
fw.fields = all

fw.prefs.port = Pref.uint("TCP port", 7400, "The TCP port decoded as Fleetwire (0: none)")
fw.prefs.heuristic = Pref.bool("Heuristic", true, "Decode any TCP stream that starts with the preface")

local function kind_name(kind)
  return KINDS[kind] or string.format("kind %d (unassigned)", kind)
end

local function header_len(tvb, off)
  if bit32.band(tvb(off + 1, 1):uint(), 0x80) ~= 0 then return 10 end
  return 8
end

local function add_header(tree, fields, tvb, off, len)
  for _, h in ipairs(fields) do
    if h.byte + h.width <= len then tree:add(h.field, tvb(off + h.byte, h.width)) end
  end
end

local function add_text(tree, field, tvb, off, len)
  if len > 0 then tree:add(field, tvb(off, len), tvb(off, len):string(ENC_UTF_8)) end
end

local function malformed(tree, tvb, off, len, why)
  tree:add(f.malformed, tvb(off, len), why)
end

-- The control payloads of §5.2-§5.7.
local function dissect_payload(kind, codec, tvb, p, n, tree)
  if kind == 1 then -- HELLO
    if n < HELLO_FIXED then return malformed(tree, tvb, p, n, "HELLO shorter than 28 bytes") end
    for _, h in ipairs(HELLO) do
      local item = tree:add(h.field, tvb(p + h.offset, h.size))
      if p + h.offset == p + CODECS_OFFSET then
        for _, b in ipairs(CODEC_BITS) do item:add(b, tvb(p + h.offset, 1)) end
      end
    end
    if n > HELLO_FIXED then tree:add(hello_ext, tvb(p + HELLO_FIXED, n - HELLO_FIXED)) end
  elseif kind == 2 then -- PING
    if n ~= 16 then return malformed(tree, tvb, p, n, "PING payload is not 16 bytes") end
    tree:add(f.ping_id, tvb(p, 8)); tree:add(f.ping_timestamp, tvb(p + 8, 8))
  elseif kind == 3 then -- PONG
    if n ~= 20 then return malformed(tree, tvb, p, n, "PONG payload is not 20 bytes") end
    tree:add(f.pong_id, tvb(p, 8)); tree:add(f.pong_timestamp, tvb(p + 8, 8))
    tree:add(f.pong_hold_us, tvb(p + 16, 4))
  elseif kind == 4 then -- GOAWAY
    if n < 10 then return malformed(tree, tvb, p, n, "GOAWAY shorter than 10 bytes") end
    tree:add(f.goaway_code, tvb(p, 2)); tree:add(f.goaway_delivered, tvb(p + 2, 8))
    add_text(tree, f.goaway_reason, tvb, p + 10, n - 10)
  elseif kind == 5 then -- CREDIT
    if n ~= 8 then return malformed(tree, tvb, p, n, "CREDIT payload is not 8 bytes") end
    tree:add(f.credit_packets, tvb(p, 4)); tree:add(f.credit_bytes, tvb(p + 4, 4))
  elseif kind == 6 then -- ERROR
    if n < 10 then return malformed(tree, tvb, p, n, "ERROR too short for its header") end
    tree:add(f.error_code, tvb(p, 2))
    local hl = header_len(tvb, p + 2)
    if n < 2 + hl then return malformed(tree, tvb, p, n, "ERROR too short for its header") end
    local sub = tree:add(fw, tvb(p + 2, hl), "Discarded packet's header")
    add_header(sub, ERROR_HEADER, tvb, p + 2, hl)
    add_text(tree, f.error_reason, tvb, p + 2 + hl, n - 2 - hl)
  elseif n > 0 then -- DATA
    local item = tree:add(f.payload, tvb(p, n))
    if codec == 2 then
      pcall(function() tvb(p, n):uncompress("zlib-decompressed payload") end)
    end
  end
end

-- Dissects one packet at `off` (complete); returns its kind.
local function dissect_packet(tvb, pinfo, root, off, hl, n)
  local kind = bit32.band(tvb(off, 1):uint(), 0x0F)
  local codec = bit32.rshift(bit32.band(tvb(off + 1, 1):uint(), 0x30), 4)
  local tree = root:add(fw, tvb(off, hl + n), "Fleetwire " .. kind_name(kind))
  add_header(tree, HEADER, tvb, off, hl)
  if ROUTED[kind] then
    tree:append_text(string.format(", route %d/%d/%d", tvb(off + 4, 2):uint(),
      tvb(off + 6, 1):uint(), tvb(off + 7, 1):uint()))
  end
  tree:append_text(string.format(", %d bytes", n))
  dissect_payload(kind, codec, tvb, off + hl, n, tree)
  return kind
end

function fw.dissector(tvb, pinfo, root)
  local off, len = 0, tvb:len()
  local names = {}
  while off < len do
    local rest = len - off
    if tvb(off, 1):uint() == PREFACE:get_index(0) then
      if rest < PREFACE:len() then
        pinfo.desegment_offset = off; pinfo.desegment_len = PREFACE:len() - rest
        break
      end
      local tree = root:add(fw, tvb(off, PREFACE:len()), "Fleetwire preface")
      local item = tree:add(f.preface, tvb(off, PREFACE:len()))
      if tvb(off, PREFACE:len()):bytes() ~= PREFACE then item:append_text(" (BAD_PREFACE)") end
      names[#names + 1] = "preface"
      off = off + PREFACE:len()
    else
      if rest < 2 then
        pinfo.desegment_offset = off; pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        break
      end
      local hl = header_len(tvb, off)
      if rest < hl then
        pinfo.desegment_offset = off; pinfo.desegment_len = hl - rest
        break
      end
      local n = tvb(off + 2, 2):uint()
      if rest < hl + n then
        pinfo.desegment_offset = off; pinfo.desegment_len = hl + n - rest
        break
      end
      names[#names + 1] = kind_name(dissect_packet(tvb, pinfo, root, off, hl, n))
      off = off + hl + n
    end
  end
  if #names > 0 then
    pinfo.cols.protocol = "Fleetwire"
    pinfo.cols.info = table.concat(names, ", ")
  end
  return off
end

local function heuristic(tvb, pinfo, root)
  if not fw.prefs.heuristic or tvb:len() < PREFACE:len() then return false end
  if tvb(0, PREFACE:len()):bytes() ~= PREFACE then return false end
  pinfo.conversation = fw
  fw.dissector(tvb, pinfo, root)
  return true
end

local registered_port = 0
local function register_port()
  local tcp = DissectorTable.get("tcp.port")
  if registered_port ~= 0 then tcp:remove(registered_port, fw) end
  registered_port = fw.prefs.port
  if registered_port ~= 0 then tcp:add(registered_port, fw) end
end
fw.prefs_changed = register_port

fw:register_heuristic("tcp", heuristic)
register_port()
-- TLS with ALPN fleetwire/1 (spec §10.1), decrypted when the keys are logged
local alpn = DissectorTable.get("tls.alpn")
if alpn then alpn:add("fleetwire/1", fw) end'''


def main():
    spec = parse(SPEC.read_text(encoding="utf-8"))
    lua = render(spec) + "\n"
    if sys.argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != lua:
            sys.exit("wireshark/fleetwire.lua is stale: run python3 wireshark/generate.py")
        print("wireshark/fleetwire.lua matches the spec")
        return
    OUT.write_text(lua, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
