//! `drbd`: a DRBD resource's local role, connection and disk states, as `drbdadm` reports.

use anyhow::bail;
use hakit_core::exec;

use super::{Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "drbd",
    about: "A DRBD resource's local role, connection state and disk state are as expected.",
    keys: &[
        Key {
            name: "resource",
            ty: Ty::Text("string"),
            doc: "The DRBD resource (required).",
        },
        Key {
            name: "role",
            ty: Ty::Text("string"),
            doc: "Expected role (drbdadm role), e.g. Primary.",
        },
        Key {
            name: "connection",
            ty: Ty::Text("string"),
            doc: "Expected connection state (drbdadm cstate), e.g. Connected.",
        },
        Key {
            name: "disk",
            ty: Ty::Text("string"),
            doc: "Expected disk state (drbdadm dstate), e.g. UpToDate.",
        },
    ],
    args: &["resource"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Drbd {
        resource: r.need("resource")?,
        role: r.string("role")?,
        connection: r.string("connection")?,
        disk: r.string("disk")?,
    }))
}

#[derive(Debug)]
struct Drbd {
    resource: String,
    role: Option<String>,
    connection: Option<String>,
    disk: Option<String>,
}

impl Kind for Drbd {
    fn detail(&self) -> String {
        self.resource.clone()
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let resource = &self.resource;
        let mut seen = Vec::new();
        for (what, want) in [
            ("role", &self.role),
            ("cstate", &self.connection),
            ("dstate", &self.disk),
        ] {
            let Some(want) = want else { continue };
            let r = exec::run_ok(
                &exec::argv(&[&cx.tools.drbdadm, what, resource]),
                None,
                cx.timeout,
            )?;
            // drbdadm prints local/peer ("Primary/Secondary", "UpToDate/UpToDate"): the local side counts.
            let got = r.stdout.trim().split('/').next().unwrap_or("").to_string();
            if !got.eq_ignore_ascii_case(want) {
                bail!("drbd {resource} {what} is {got}, expected {want}");
            }
            seen.push(format!("{what} {got}"));
        }
        Ok(format!("drbd {resource}: {}", seen.join(", ")))
    }
}
