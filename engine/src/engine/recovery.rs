//! `recovery.checkpoint` and `recovery.status` (docs/protocol.md): where
//! external loaders got to, one checkpoint per source, kept in
//! `recovery.json`.
//!
//! Bounded (docs/limits.md): at most `--recovery-max-sources` sources, and a
//! status answer that would pass `--max-response-bytes` is cut into pages
//! instead of failing with `response_too_large`, so the status ops stay
//! answerable however many checkpoints there are.

use crate::error::{Error, ErrorCode, Result};
use crate::files::{write_recovery, Checkpoint};
use crate::json::{write_str, write_u64};
use crate::metrics::Limit;
use crate::protocol::response::{SUCCESS_HEAD, SUCCESS_TAIL};

use super::Engine;

/// The longest `{"checkpoint_count":N,"checkpoints":[` and `]}` can be.
const FRAME_BYTES: usize = b"{\"checkpoint_count\":18446744073709551615,\"checkpoints\":[]}".len();

pub(super) fn checkpoint_json(out: &mut Vec<u8>, c: &Checkpoint) {
    out.extend_from_slice(b"{\"source\":");
    write_str(out, &c.source);
    for (name, v) in [("offset", &c.offset), ("event_id", &c.event_id)] {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match v {
            Some(s) => write_str(out, s),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"updated_at_unix\":");
    write_u64(out, c.updated_at_unix);
    out.push(b'}');
}

/// `{"checkpoint_count":N,"checkpoints":[...]}` of `selected`, exactly as
/// Karma 1.0 answers whenever it fits `budget`. Otherwise only the first
/// checkpoints that fit, followed by `"next_after_source"`: the last source
/// included, to ask for the rest with `after_source`. At least one
/// checkpoint is always included, so paging always moves on.
fn status_json(selected: &[&Checkpoint], budget: Option<usize>) -> Vec<u8> {
    let mut list = Vec::with_capacity(128 * selected.len().min(64));
    for (i, c) in selected.iter().enumerate() {
        if i > 0 {
            list.push(b',');
        }
        checkpoint_json(&mut list, c);
    }
    let whole = frame(selected.len(), &list, None);
    let Some(budget) = budget.filter(|b| whole.len() > *b && !selected.is_empty()) else { return whole };
    list.clear();
    let mut included = 0;
    for c in selected {
        let start = list.len();
        if included > 0 {
            list.push(b',');
        }
        checkpoint_json(&mut list, c);
        // Room for the frame and the page marker, whose source is no longer
        // than this checkpoint's JSON.
        let marker = 24 + (list.len() - start);
        if included > 0 && FRAME_BYTES + list.len() + marker > budget {
            list.truncate(start);
            break;
        }
        included += 1;
    }
    let next = (included < selected.len()).then(|| selected[included - 1].source.as_str());
    frame(included, &list, next)
}

fn frame(count: usize, list: &[u8], next: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len() + FRAME_BYTES + 64);
    out.extend_from_slice(b"{\"checkpoint_count\":");
    write_u64(&mut out, count as u64);
    out.extend_from_slice(b",\"checkpoints\":[");
    out.extend_from_slice(list);
    out.push(b']');
    if let Some(source) = next {
        out.extend_from_slice(b",\"next_after_source\":");
        write_str(&mut out, source);
    }
    out.push(b'}');
    out
}

impl Engine {
    /// How many bytes a response value may take before the envelope around
    /// it passes `--max-response-bytes`, after `used` bytes already written
    /// and `reserve` still to come; `None` when responses are unlimited.
    pub(super) fn response_budget(&self, used: usize, reserve: usize) -> Option<usize> {
        match self.inner.options.max_response_bytes {
            0 => None,
            max => Some(max.saturating_sub(SUCCESS_HEAD.len() + SUCCESS_TAIL.len() + used + reserve)),
        }
    }

    /// `recovery.status`: the checkpoint of `source`, or those after
    /// `after_source` in source order, paged to fit `budget` bytes.
    pub(super) fn recovery_status_json(
        &self,
        source: Option<&str>,
        after_source: Option<&str>,
        budget: Option<usize>,
    ) -> Vec<u8> {
        let cps = self.inner.recovery.lock();
        // Kept sorted by source bytes (see `recovery_checkpoint`).
        let selected: Vec<&Checkpoint> = match (source, after_source) {
            (Some(s), _) => cps.iter().filter(|c| c.source == s).collect(),
            (None, Some(after)) => cps.iter().filter(|c| c.source.as_bytes() > after.as_bytes()).collect(),
            (None, None) => cps.iter().collect(),
        };
        status_json(&selected, budget)
    }

    /// `recovery.checkpoint`: stores `cp`, replacing the source's previous
    /// one. The file is rewritten (atomically, fsynced) before memory
    /// changes, so a failed write leaves both as they were. Its size is
    /// bounded by `--recovery-max-sources`.
    pub(super) fn recovery_checkpoint(&self, cp: Checkpoint) -> Result<()> {
        let mut cps = self.inner.recovery.lock();
        let at = cps.binary_search_by(|c| c.source.as_bytes().cmp(cp.source.as_bytes()));
        let max = self.inner.options.recovery_max_sources;
        let previous = match at {
            Ok(i) => Some(std::mem::replace(&mut cps[i], cp)),
            Err(_) if cps.len() >= max => {
                self.count_limit(Limit::RecoverySources);
                return Err(Error::new(ErrorCode::LimitExceeded, format!("Too many recovery sources (limit {max})")));
            }
            Err(i) => {
                cps.insert(i, cp);
                None
            }
        };
        let written = match &self.inner.disk {
            Some(disk) => write_recovery(&disk.dir, &cps),
            None => Ok(()),
        };
        if written.is_err() {
            match (at, previous) {
                (Ok(i), Some(old)) => cps[i] = old,
                (Err(i), _) | (Ok(i), None) => {
                    cps.remove(i);
                }
            }
        }
        written
    }
}

/// Sorts checkpoints read from `recovery.json` by source bytes, the last of
/// a duplicated source winning, as `recovery_checkpoint` keeps them.
pub(super) fn sorted(checkpoints: Vec<Checkpoint>) -> Vec<Checkpoint> {
    let mut by_source = std::collections::BTreeMap::new();
    for c in checkpoints {
        by_source.insert(c.source.clone().into_bytes(), c);
    }
    by_source.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(source: &str) -> Checkpoint {
        Checkpoint { source: source.to_owned(), offset: Some("1".into()), event_id: None, updated_at_unix: 7 }
    }

    #[test]
    fn a_status_that_fits_is_unchanged_and_one_that_does_not_is_paged() {
        let all: Vec<Checkpoint> = (0..10).map(|i| cp(&format!("s{i}"))).collect();
        let refs: Vec<&Checkpoint> = all.iter().collect();
        let whole = status_json(&refs, None);
        assert_eq!(status_json(&refs, Some(whole.len())), whole);
        assert!(!String::from_utf8_lossy(&whole).contains("next_after_source"));

        let page = status_json(&refs, Some(whole.len() - 1));
        let text = String::from_utf8(page.clone()).unwrap();
        assert!(page.len() < whole.len());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let n = v["checkpoints"].as_array().unwrap().len();
        assert!((1..10).contains(&n), "{text}");
        assert_eq!(v["checkpoint_count"], n);
        assert_eq!(v["next_after_source"], format!("s{}", n - 1));
        // A budget too small for anything still moves on by one.
        let one: serde_json::Value = serde_json::from_slice(&status_json(&refs, Some(1))).unwrap();
        assert_eq!(one["checkpoint_count"], 1);
        assert_eq!(one["next_after_source"], "s0");
    }

    #[test]
    fn sorted_keeps_one_checkpoint_per_source_in_byte_order() {
        let mut late = cp("b");
        late.updated_at_unix = 9;
        let s = sorted(vec![cp("b"), cp("a"), late, cp("B")]);
        let names: Vec<&str> = s.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(names, ["B", "a", "b"]);
        assert_eq!(s[2].updated_at_unix, 9);
    }
}
