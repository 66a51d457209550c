//! Server-sent events cut out of a byte stream: lines end in `\n` (a `\r` before it is
//! dropped), `event:` names an event, `data:` lines add to its data (joined with `\n`), a
//! blank line ends it, comments and other fields are skipped. Only the event being received
//! is held, up to [`MAX_EVENT_BYTES`].

use memchr::memchr;

/// The most bytes one event may hold; a larger one is skipped and reported.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One complete event, borrowed from the framer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` name, if the event had one.
    pub name: Option<&'a str>,
    /// The `data:` lines, joined with `\n`.
    pub data: &'a [u8],
}

/// What the framer found in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Event(Event<'a>),
    /// An event larger than [`MAX_EVENT_BYTES`] was skipped.
    Oversized,
}

#[derive(Debug, Default)]
pub struct Frames {
    /// The unfinished last line of the bytes fed so far.
    line: Vec<u8>,
    name: String,
    has_name: bool,
    data: Vec<u8>,
    has_data: bool,
    /// The current event passed the size limit: skip it to its end.
    oversized: bool,
}

impl Frames {
    /// Feeds `chunk`, calling `on_frame` for each event it completes, in order.
    pub fn feed(&mut self, chunk: &[u8], mut on_frame: impl FnMut(Frame<'_>)) {
        let mut rest = chunk;
        while let Some(nl) = memchr(b'\n', rest) {
            let (head, tail) = (&rest[..nl], &rest[nl + 1..]);
            rest = tail;
            if self.line.is_empty() {
                self.line_end(head, &mut on_frame);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.line_end(&line, &mut on_frame);
                line.clear();
                self.line = line;
            }
        }
        if !rest.is_empty() {
            if self.line.len() + rest.len() + self.data.len() > MAX_EVENT_BYTES {
                self.oversized = true;
                self.line.clear();
                self.data = Vec::new();
            } else if !self.oversized {
                self.line.extend_from_slice(rest);
            }
        }
    }

    /// True when bytes of an unfinished event are held.
    pub fn mid_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.has_name || self.oversized
    }

    fn line_end(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(on_frame);
            return;
        }
        if self.oversized {
            return;
        }
        let (field, value) = match memchr(b':', line) {
            Some(0) => return,
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    self.oversized = true;
                    self.data = Vec::new();
                    return;
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.name.clear();
                self.name.push_str(&String::from_utf8_lossy(value));
                self.has_name = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) {
        if std::mem::take(&mut self.oversized) {
            on_frame(Frame::Oversized);
        } else if self.has_data {
            on_frame(Frame::Event(Event {
                name: self.has_name.then_some(self.name.as_str()),
                data: &self.data,
            }));
        }
        self.data.clear();
        self.has_data = false;
        self.has_name = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut frames = Frames::default();
        let mut out = Vec::new();
        for chunk in chunks {
            frames.feed(chunk, |frame| match frame {
                Frame::Event(e) => out.push((
                    e.name.map(str::to_owned),
                    String::from_utf8(e.data.to_vec()).expect("utf8"),
                )),
                Frame::Oversized => out.push((None, "<oversized>".into())),
            });
        }
        out
    }

    #[test]
    fn named_and_unnamed_events_with_crlf_and_comments() {
        let got = events(&[
            b": keep-alive\n\nevent: response.created\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\nid: 3\n\ndata: [DONE]\n\n",
        ]);
        assert_eq!(
            got,
            vec![
                (Some("response.created".into()), "{\"a\":1}".into()),
                (None, "x\ny".into()),
                (None, "[DONE]".into()),
            ]
        );
    }

    #[test]
    fn events_split_at_every_byte_are_whole() {
        let stream = "event: e\ndata: {\"t\":\"héllo 世界\"}\n\ndata: [DONE]\n\n".as_bytes();
        let whole = events(&[stream]);
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&pieces), whole);
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn an_unfinished_event_is_held_not_sent() {
        let mut frames = Frames::default();
        let mut count = 0;
        frames.feed(b"data: {\"a\":", |_| count += 1);
        assert_eq!(count, 0);
        assert!(frames.mid_event());
        frames.feed(b"1}\n\n", |_| count += 1);
        assert_eq!(count, 1);
        assert!(!frames.mid_event());
    }

    #[test]
    fn an_oversized_event_is_reported_and_skipped() {
        let big = vec![b'x'; MAX_EVENT_BYTES];
        let mut chunks: Vec<&[u8]> = vec![b"data: "];
        chunks.extend(big.chunks(1 << 20));
        chunks.push(b"\n\ndata: next\n\n");
        assert_eq!(
            events(&chunks),
            vec![(None, "<oversized>".into()), (None, "next".into())]
        );
    }
}
