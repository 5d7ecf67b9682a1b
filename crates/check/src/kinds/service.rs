//! `service`: a service runs: a systemd unit is active, a pidfile's process is alive, or a
//! process of that name exists.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::{Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "service",
    about: "A service runs: exactly one of unit, pidfile, process.",
    keys: &[
        Key {
            name: "unit",
            ty: Ty::Text("string"),
            doc: "A systemd unit that must be active.",
        },
        Key {
            name: "pidfile",
            ty: Ty::Text("path"),
            doc: "A pidfile whose process must be alive.",
        },
        Key {
            name: "process",
            ty: Ty::Text("string"),
            doc: "A process name (as /proc/PID/comm shows it).",
        },
    ],
    args: &[],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let (unit, pidfile, process) = (
        r.string("unit")?,
        r.string("pidfile")?.map(PathBuf::from),
        r.string("process")?,
    );
    let n = [unit.is_some(), pidfile.is_some(), process.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if n != 1 {
        return Err("service probe needs exactly one of `unit`, `pidfile`, `process`".into());
    }
    Ok(Box::new(Service {
        unit,
        pidfile,
        process,
    }))
}

#[derive(Debug)]
struct Service {
    unit: Option<String>,
    pidfile: Option<PathBuf>,
    process: Option<String>,
}

impl Kind for Service {
    fn detail(&self) -> String {
        self.unit
            .clone()
            .or(self.process.clone())
            .or(self.pidfile.as_ref().map(|p| p.display().to_string()))
            .unwrap_or_default()
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        if let Some(u) = &self.unit {
            let st = hakit_net::systemd::unit_state(&cx.tools.systemctl, u, cx.timeout)?;
            if !st.active {
                bail!("unit {u} is {}", st.word);
            }
            return Ok(format!("unit {u} active"));
        }
        if let Some(p) = &self.pidfile {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("read pidfile {}", p.display()))?;
            let pid: i32 = text
                .trim()
                .parse()
                .with_context(|| format!("pidfile {} holds no pid", p.display()))?;
            if pid <= 0 {
                bail!("pidfile {} holds pid {pid}", p.display());
            }
            return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
                Ok(()) | Err(nix::errno::Errno::EPERM) => Ok(format!("pid {pid} alive")),
                Err(_) => bail!("pid {pid} from {} is not running", p.display()),
            };
        }
        let name = self.process.as_deref().unwrap_or_default();
        if let Some(pid) = hakit_core::procs::find_comm(name) {
            return Ok(format!("process {name} running (pid {pid})"));
        }
        bail!("no process named {name}")
    }
}
