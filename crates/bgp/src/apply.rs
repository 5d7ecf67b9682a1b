//! A role brought to every announced prefix in place: read, write only what differs, read
//! back ([`Speaker::ensure`]), and the role the prefixes have now ([`Speaker::current`]).

use anyhow::bail;
use hakit_core::{config::Cidr, exec};

use crate::{Seen, Speaker, Target};

impl Speaker {
    /// Brings every prefix to `target`: read, write only what differs, read back (each
    /// phase one speaker command where the dialect takes several prefixes at once).
    /// `stop` is asked before each phase and stops a running speaker command.
    pub fn ensure(&self, target: Target, stop: exec::Stop) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        if let Some(why) = stop() {
            bail!("superseded before {}: {why}", self.prefixes_text());
        }
        // A dialect that reads around its write (FRR) announces in one call: every prefix
        // written, the reads before say which changed. A withdrawal reads first.
        let around = self.dialect.write_reads_around() && target != Target::Withdraw;
        let written = if around {
            Some(self.write(&self.prefixes, target, stop)?)
        } else {
            None
        };
        let before = match &written {
            Some(w) => w.as_ref().map(|(before, _)| before.clone()),
            None => Some(self.read_all(&self.prefixes, stop)?),
        };
        let mut todo = Vec::new();
        for (i, p) in self.prefixes.iter().enumerate() {
            match before.as_ref().and_then(|b| b.get(i)) {
                Some(seen) if self.is(seen, target) => applied.unchanged.push(*p),
                Some(seen) => {
                    applied.changed.push((*p, self.describe(seen)));
                    todo.push(*p);
                }
                // Written in one call whose answer did not parse: what it was is unknown.
                None => {
                    applied.changed.push((*p, "not read".into()));
                    todo.push(*p);
                }
            }
        }
        if todo.is_empty() {
            return Ok(applied);
        }
        // Around, every prefix was written and is checked; else only those that changed.
        let (written, todo) = match written {
            Some(w) => (w, self.prefixes.clone()),
            None => (self.write(&todo, target, stop)?, todo),
        };
        let after = match written {
            Some((_, seen)) if seen.iter().all(|s| self.is(s, target)) => seen,
            // Read (again): a daemon may answer before it has applied all of it (FRR
            // checks a network new to it against its routes first).
            _ => self.read_all(&todo, stop)?,
        };
        for (p, seen) in todo.iter().zip(&after) {
            if !self.is(seen, target) {
                bail!(
                    "{} did not take {p} {target}: it is {} after the change",
                    self.kind_name(),
                    self.describe(seen)
                );
            }
        }
        Ok(applied)
    }

    /// The role every prefix has now: `Some` when all agree.
    pub fn current(&self, stop: exec::Stop) -> anyhow::Result<(Option<Target>, String)> {
        let mut all = Vec::new();
        let mut text = Vec::new();
        for (p, seen) in self
            .prefixes
            .iter()
            .zip(self.read_all(&self.prefixes, stop)?)
        {
            text.push(format!("{p} {}", self.describe(&seen)));
            all.push(match (&seen, self.role_of(&seen)) {
                (Seen::Absent, _) => Some(Target::Withdraw),
                (_, Some(r)) if self.is(&seen, Target::Announce(r)) => Some(Target::Announce(r)),
                _ => None,
            });
        }
        let first = all.first().copied().flatten();
        let agreed = if all.iter().all(|t| *t == first) {
            first
        } else {
            None
        };
        Ok((agreed, text.join(", ")))
    }
}

/// What [`Speaker::ensure`] did: prefixes changed (with what they were) and unchanged.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub changed: Vec<(Cidr, String)>,
    pub unchanged: Vec<Cidr>,
}
