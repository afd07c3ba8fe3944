//! A byte-stream filter that injects a mutant's bug in front of the crate's deframer or
//! connection: it finds packet boundaries by the raw header layout (§4.1), holds a packet
//! back only until the mutant can decide, and passes, rewrites or drops it.

use fleetwire::ErrorCode;

use super::mutants::Mutant;

/// What the filter does with the packet at the front of its buffer.
enum Decision {
    /// More bytes of the packet are needed to decide.
    NeedMore,
    /// Forward the (possibly rewritten) header; the payload follows unchanged.
    Header(Vec<u8>),
    /// Forward this instead of the whole (complete) packet.
    Packet(Vec<u8>),
    /// Swallow the whole packet.
    Drop,
    /// The mutant reports this error for the packet.
    Error(ErrorCode),
}

/// The mutant's view of a stream of packets.
pub(crate) struct Filter {
    mutant: Mutant,
    max_payload: u16,
    preface: Vec<u8>,
    want_preface: bool,
    buf: Vec<u8>,
    pass_left: usize,
    drop_left: usize,
    /// Input offset of the first byte of `buf` (the packet being decided).
    offset: u64,
    hellos: u32,
    peer_is_client: bool,
    /// In front of a connection (state rules apply) rather than a plain deframer.
    connection: bool,
    failed: Option<(ErrorCode, u64)>,
}

fn header_len(buf: &[u8]) -> Option<usize> {
    let n = if buf.get(1)? & 0x80 != 0 { 10 } else { 8 };
    (buf.len() >= n).then_some(n)
}

impl Filter {
    /// A filter for `mutant`; `preface` says whether the stream begins with one.
    pub(crate) fn new(mutant: Mutant, preface: bool, max_payload: u16, connection: bool) -> Filter {
        Filter {
            mutant,
            max_payload,
            preface: Vec::new(),
            want_preface: preface,
            buf: Vec::new(),
            pass_left: 0,
            drop_left: 0,
            offset: if preface { 8 } else { 0 },
            hellos: 0,
            peer_is_client: false,
            connection,
            failed: None,
        }
    }

    /// The error the mutant reported, with the stream offset of its packet.
    pub(crate) fn failed(&self) -> Option<(ErrorCode, u64)> {
        self.failed
    }

    /// Whether bytes of an undecided packet are held back.
    pub(crate) fn holding(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Feeds one read; appends what the buggy receiver passes on to `out`.
    pub(crate) fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if self.failed.is_some() {
            return;
        }
        if self.want_preface && self.preface.len() < 8 {
            let take = data.len().min(8 - self.preface.len());
            self.preface.extend_from_slice(&data[..take]);
            let mut bytes = data[..take].to_vec();
            if self.mutant == Mutant::PrefaceLastByteUnchecked && self.preface.len() == 8 {
                if let Some(last) = bytes.last_mut() {
                    *last = fleetwire::PREFACE[7];
                }
            }
            out.extend_from_slice(&bytes);
            data = &data[take..];
        }
        // the bug: a read that continues a split header loses its first byte
        let partial_header = !self.buf.is_empty() && header_len(&self.buf).is_none();
        if self.mutant == Mutant::SplitBug && partial_header && !data.is_empty() {
            data = &data[1..];
        }
        while !data.is_empty() && self.failed.is_none() {
            data = self.step(data, out);
        }
    }

    fn step<'d>(&mut self, data: &'d [u8], out: &mut Vec<u8>) -> &'d [u8] {
        if self.pass_left > 0 {
            let n = self.pass_left.min(data.len());
            out.extend_from_slice(&data[..n]);
            self.pass_left -= n;
            self.offset += n as u64;
            return &data[n..];
        }
        if self.drop_left > 0 {
            let n = self.drop_left.min(data.len());
            self.drop_left -= n;
            self.offset += n as u64;
            return &data[n..];
        }
        // take bytes into the buffer up to the end of the packet (when known)
        let want = match (self.buf.len(), self.packet_len()) {
            (0 | 1, _) => 2,
            (_, Some(total)) => total.max(self.buf.len() + 1),
            _ if self.buf[1] & 0x80 != 0 => 10,
            _ => 8,
        };
        let n = (want - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.decide_front(out);
        &data[n..]
    }

    fn packet_len(&self) -> Option<usize> {
        let hl = header_len(&self.buf)?;
        Some(hl + usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])))
    }

    fn decide_front(&mut self, out: &mut Vec<u8>) {
        let Some(total) = self.packet_len() else {
            return;
        };
        let complete = self.buf.len() >= total;
        let consumed = self.buf.len();
        match self.decide(complete) {
            Decision::NeedMore => return,
            Decision::Header(h) => {
                let hl = header_len(&self.buf).unwrap_or(8);
                out.extend_from_slice(&h);
                out.extend_from_slice(&self.buf[hl..]);
                self.pass_left = total - consumed;
            }
            Decision::Packet(p) => out.extend_from_slice(&p),
            Decision::Drop => self.drop_left = total - consumed,
            Decision::Error(code) => {
                self.failed = Some((code, self.offset));
                return;
            }
        }
        self.offset += consumed as u64;
        self.buf.clear();
    }

    fn decide(&mut self, complete: bool) -> Decision {
        let hl = header_len(&self.buf).unwrap_or(8);
        let mut header = self.buf[..hl].to_vec();
        if let Some(code) = self.mutant.precheck(&header, self.max_payload) {
            return Decision::Error(code);
        }
        self.mutant.rewrite_header(&mut header);
        let kind = header[0] & 0x0F;
        let is_hello = header[0] == 0x11;
        if !self.connection {
            return Decision::Header(header);
        }
        if is_hello && !complete {
            return Decision::NeedMore;
        }
        if is_hello {
            self.hellos += 1;
            self.peer_is_client = self.hellos == 1 && self.buf.get(hl + 2) == Some(&1);
            if self.mutant == Mutant::HelloAfterEstablishedAccepted && self.hellos > 1 {
                return Decision::Drop;
            }
        }
        if self.mutant == Mutant::ForwardsForgedSource
            && self.peer_is_client
            && hl == 10
            && matches!(kind, 0 | 6)
        {
            header[1] &= !0x80;
            header.truncate(8);
            return Decision::Header(header);
        }
        match self.control_fix(kind) {
            Some(_) if !complete => Decision::NeedMore,
            Some(Some(payload)) => {
                let mut h = header;
                let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
                h[2..4].copy_from_slice(&len.to_be_bytes());
                h.extend_from_slice(&payload);
                Decision::Packet(h)
            }
            Some(None) => Decision::Drop,
            None => Decision::Header(header),
        }
    }

    /// For control-payload mutants: `None` when the packet is not of interest, else
    /// `Some(None)` to drop it or `Some(Some(payload))` with a payload the real parser
    /// accepts. Only meaningful once the packet is complete.
    fn control_fix(&self, kind: u8) -> Option<Option<Vec<u8>>> {
        let interesting = match self.mutant {
            Mutant::CreditZeroAccepted => kind == 5,
            Mutant::HelloLengthUnchecked => kind == 1,
            Mutant::ReasonUtf8Unchecked => kind == 4 || kind == 6,
            Mutant::GoawayReasonUnchecked => kind == 4,
            Mutant::PingTrailingAccepted => kind == 2,
            _ => false,
        };
        if !interesting {
            return None;
        }
        let hl = header_len(&self.buf)?;
        let total = self.packet_len()?;
        if self.buf.len() < total {
            return Some(Some(Vec::new()));
        }
        let payload = &self.buf[hl..total];
        Some(super::reference::lenient_control_payload(
            self.mutant,
            kind,
            payload,
        ))
    }
}
