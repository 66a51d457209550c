//! The body the upstream gets, built in one pass from the client's buffer and the edits every
//! rewrite makes to it (byte ranges replaced or removed). The unchanged parts stay slices of the
//! client's buffer; never re-serialises JSON, never copies what does not change.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// One change to the client's body: `range` (of the original bytes) becomes `replacement`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub range: Range<usize>,
    pub replacement: Bytes,
}

impl Edit {
    pub fn replace(range: Range<usize>, replacement: Bytes) -> Edit {
        Edit { range, replacement }
    }

    pub fn remove(range: Range<usize>) -> Edit {
        Edit::replace(range, Bytes::new())
    }
}

/// `body` with `edits` applied. An edit inside a range an earlier edit already replaced (an
/// image inside a removed member) is dropped with it. No edits: the very same `Bytes`.
pub fn apply(body: &Bytes, mut edits: Vec<Edit>) -> UpstreamBody {
    if edits.is_empty() {
        return UpstreamBody::from(body.clone());
    }
    edits.sort_by_key(|edit| edit.range.start);
    let mut parts = Vec::with_capacity(2 * edits.len() + 1);
    let mut at = 0;
    for edit in edits {
        if edit.range.start < at || edit.range.end > body.len() {
            continue;
        }
        parts.push(body.slice(at..edit.range.start));
        parts.push(edit.replacement);
        at = edit.range.end;
    }
    parts.push(body.slice(at..));
    UpstreamBody::from_parts(parts)
}

/// A request body as parts of shared buffers, in order; empty parts are left out.
#[derive(Clone, Debug, Default)]
pub struct UpstreamBody {
    parts: Vec<Bytes>,
    len: usize,
}

impl UpstreamBody {
    pub fn from_parts(parts: Vec<Bytes>) -> UpstreamBody {
        let parts: Vec<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let len = parts.iter().map(Bytes::len).sum();
        UpstreamBody { parts, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// One contiguous buffer: the only part itself, or a copy of all of them.
    pub fn into_bytes(mut self) -> Bytes {
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts.swap_remove(0),
            _ => {
                let mut out = BytesMut::with_capacity(self.len);
                for part in &self.parts {
                    out.extend_from_slice(part);
                }
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for UpstreamBody {
    fn from(bytes: Bytes) -> UpstreamBody {
        UpstreamBody::from_parts(vec![bytes])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_edits_give_back_the_same_buffer() {
        let body = Bytes::from_static(b"{\"model\":\"m\"}");
        let out = apply(&body, Vec::new());
        assert_eq!(out.parts().len(), 1);
        assert_eq!(out.parts()[0].as_ptr(), body.as_ptr());
    }

    #[test]
    fn edits_apply_in_body_order_whatever_order_they_come_in() {
        let body = Bytes::from_static(b"0123456789");
        let edits = vec![
            Edit::replace(7..8, Bytes::from_static(b"seven")),
            Edit::remove(1..3),
            Edit::replace(4..5, Bytes::from_static(b"F")),
        ];
        let out = apply(&body, edits);
        assert_eq!(
            out.clone().into_bytes(),
            Bytes::from_static(b"03F56seven89")
        );
        assert_eq!(out.len(), 12);
    }

    #[test]
    fn an_edit_inside_a_removed_range_goes_with_it() {
        let body = Bytes::from_static(b"abcdefgh");
        let edits = vec![
            Edit::replace(3..4, Bytes::from_static(b"X")),
            Edit::remove(2..6),
        ];
        assert_eq!(
            apply(&body, edits).into_bytes(),
            Bytes::from_static(b"abgh")
        );
    }

    #[test]
    fn unchanged_parts_are_slices_of_the_client_buffer() {
        let body = Bytes::copy_from_slice(b"{\"model\":\"m\",\"messages\":[]}");
        let out = apply(
            &body,
            vec![Edit::replace(9..12, Bytes::from_static(b"\"dep\""))],
        );
        let range = body.as_ptr_range();
        let shared = out
            .parts()
            .iter()
            .filter(|p| range.contains(&p.as_ptr()))
            .count();
        assert_eq!(shared, 2);
    }
}
