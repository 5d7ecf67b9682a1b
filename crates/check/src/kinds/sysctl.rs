//! `sysctl`: kernel settings have the values a gateway needs (forwarding on, …).

use anyhow::bail;

use super::{Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "sysctl",
    about: "Kernel settings have the expected values.",
    keys: &[Key {
        name: "expect",
        ty: Ty::List,
        doc: "key=value pairs, e.g. [\"net.ipv4.ip_forward=1\"] (required).",
    }],
    args: &["expect"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let list = r.strings("expect")?;
    if list.is_empty() {
        return Err("sysctl probe needs `expect` (e.g. [\"net.ipv4.ip_forward=1\"])".into());
    }
    let mut expect = Vec::new();
    for e in &list {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| format!("sysctl probe: {e:?} is not key=value"))?;
        let k = k.trim();
        // The one reader's rule (sysctl(8)'s notation, never outside /proc/sys), at load.
        hakit_core::sysctl::path(k).map_err(|e| format!("sysctl probe: {e}"))?;
        expect.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Box::new(Sysctl { expect }))
}

#[derive(Debug)]
struct Sysctl {
    expect: Vec<(String, String)>,
}

impl Kind for Sysctl {
    fn detail(&self) -> String {
        self.expect
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn run(&self, _cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let mut bad = Vec::new();
        for (k, v) in &self.expect {
            let got = hakit_core::sysctl::read(k)?;
            let got = got.split_whitespace().collect::<Vec<_>>().join(" ");
            let want = v.split_whitespace().collect::<Vec<_>>().join(" ");
            if got != want {
                bad.push(format!("{k}={got} (expected {want})"));
            }
        }
        if !bad.is_empty() {
            bail!("{}", bad.join(", "));
        }
        Ok(format!("{} sysctl(s) as expected", self.expect.len()))
    }
}
