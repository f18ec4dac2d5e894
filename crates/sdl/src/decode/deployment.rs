//! The `deployment` section (how many replicas of each service run under which placement
//! and compute profile) and the deployment's `reclamation` window.

use std::collections::BTreeMap;

use super::Decoder;
use crate::error::FieldPath;
use crate::model::Deployment;
use crate::yaml::{Node, Pos};

/// How a reclamation window must be written, for errors.
const WINDOW_FORMAT: &str =
    "expected a whole number greater than zero followed by s, m or h, such as \"24h\"";

impl Decoder<'_> {
    /// `deployment`: by service, then by placement profile.
    pub(super) fn deployment(
        &mut self,
        node: &Node,
        path: &FieldPath,
    ) -> Option<BTreeMap<String, BTreeMap<String, Deployment>>> {
        self.map_values(node, path, |d, placements, _, p| {
            d.map_values(placements, p, Self::placement_deployment)
        })
    }

    /// `deployment.<service>.<placement>`: the compute profile and the replica count.
    fn placement_deployment(
        &mut self,
        node: &Node,
        key_pos: Pos,
        path: &FieldPath,
    ) -> Option<Deployment> {
        let f = self.fields(node, path, &["profile", "count"], &["profile", "count"])?;
        let profile =
            f.get("profile").and_then(|n| self.string(n, &path.key("profile")).map(|s| (s, n.pos)));
        let count = f.get("count").and_then(|n| {
            self.bounded_u32(n, &path.key("count"), 1, u64::from(u32::MAX), "a count of at least 1")
        });
        let (profile, profile_pos) = profile?;
        Some(Deployment { pos: key_pos, profile, profile_pos, count: count? })
    }

    /// `reclamation`: the minimum reclamation window in seconds.
    pub(super) fn reclamation(&mut self, node: &Node, path: &FieldPath) -> Option<Option<u64>> {
        let f = self.fields(node, path, &["min_window"], &["min_window"])?;
        let n = f.get("min_window")?;
        let p = path.key("min_window");
        let text = self.string(n, &p)?;
        match window_secs(&text) {
            Ok(secs) => Some(Some(secs)),
            Err(problem) => {
                self.err(n.pos, &p, problem);
                None
            }
        }
    }
}

/// A reclamation window such as `24h` in seconds, or what is wrong with it.
fn window_secs(text: &str) -> Result<u64, String> {
    let (digits, mult) = match text.as_bytes().last() {
        Some(b's') => (&text[..text.len() - 1], 1u64),
        Some(b'm') => (&text[..text.len() - 1], 60),
        Some(b'h') => (&text[..text.len() - 1], 3600),
        _ => return Err(format!("invalid reclamation window {text:?}; {WINDOW_FORMAT}")),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid reclamation window {text:?}; {WINDOW_FORMAT}"));
    }
    match digits.parse::<u64>().ok().and_then(|d| d.checked_mul(mult)) {
        Some(0) => Err(format!("reclamation window {text:?} is zero; {WINDOW_FORMAT}")),
        Some(secs) => Ok(secs),
        None => Err(format!("reclamation window {text:?} is too large; {WINDOW_FORMAT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::window_secs;

    #[test]
    fn reclamation_windows_are_whole_seconds_minutes_or_hours() {
        assert_eq!(window_secs("45s"), Ok(45));
        assert_eq!(window_secs("30m"), Ok(1800));
        assert_eq!(window_secs("24h"), Ok(86_400));
        for bad in ["", "h", "5", "5x", "-1h", "1.5h", "1é"] {
            let err = window_secs(bad).err().unwrap_or_default();
            assert!(err.starts_with("invalid reclamation window"), "{bad}: {err}");
        }
        assert!(window_secs("0h").is_err_and(|e| e.contains("is zero")));
        assert!(window_secs("99999999999999999999h").is_err_and(|e| e.contains("too large")));
    }
}
