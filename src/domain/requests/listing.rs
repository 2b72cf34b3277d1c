//! Request listings: by due time (from the due-time index of open
//! requests), by status, by subject, or all.

use super::model::*;
use super::ops::{current, get, time_key, Requests, RequestsBySubject, RequestsDue};
use crate::engine::Engine;
use crate::error::Result;
use crate::types::Timestamp;

/// Which requests a listing returns.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    /// Only requests still open (or on hold) and due before this time:
    /// `Some(now)` lists the overdue ones, `Some(now + 7 days)` those due
    /// within a week (overdue included).
    pub due_before: Option<Timestamp>,
    /// Only this status.
    pub status: Option<RequestStatus>,
    /// Only this subject.
    pub subject_ref: Option<[u8; 16]>,
    /// At most this many (in due order for due listings, else id order).
    pub limit: Option<usize>,
}

/// `Db::requests`. A due listing reads the due-time index (open requests
/// only, in due order) and then only the requests it lists.
pub(crate) fn list(db: &Engine, f: &RequestFilter) -> Result<Vec<Request>> {
    let now = Timestamp::now();
    let limit = f.limit.unwrap_or(usize::MAX);
    let keep = |r: &Request| {
        f.status.is_none_or(|s| s == r.status) && f.subject_ref.is_none_or(|s| s == r.subject_ref)
    };
    let mut out = Vec::new();
    if let Some(before) = f.due_before {
        // In due order, 1,024 index entries at a time, until the limit.
        let mut index = db
            .store
            .range::<RequestsDue>(&(0, 0), Some(&(time_key(before), 0)))?
            .map(|item| item.map(|((_, id), _)| id));
        while out.len() < limit {
            let chunk: Vec<u64> = index.by_ref().take(1024).collect::<Result<_>>()?;
            if chunk.is_empty() {
                break;
            }
            for r in db
                .store
                .multi_get::<Requests>(&chunk)?
                .into_iter()
                .flatten()
            {
                let r = current(db, r, now)?;
                if out.len() < limit && keep(&r) {
                    out.push(r);
                }
            }
        }
        return Ok(out);
    }
    if let Some(subject) = f.subject_ref {
        for key in db.store.keys_with::<RequestsBySubject>(&subject)? {
            if out.len() >= limit {
                break;
            }
            let r = get(db, key?.1)?;
            if keep(&r) {
                out.push(r);
            }
        }
        return Ok(out);
    }
    for item in db.store.entries::<Requests>(&[])? {
        let r = current(db, item?.1, now)?;
        if keep(&r) {
            out.push(r);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}
