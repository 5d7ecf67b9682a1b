//! `link`: an interface is up and has carrier.

use anyhow::{bail, Context};

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "link",
    about: "The interface is up and has carrier.",
    keys: &[Key {
        name: "interface",
        ty: Ty::Text("string"),
        doc: "The interface (required).",
    }],
    args: &["interface"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Link {
        dev: r.need("interface")?,
    }))
}

#[derive(Debug)]
struct Link {
    dev: String,
}

impl Kind for Link {
    fn detail(&self) -> String {
        self.dev.clone()
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let dev = &self.dev;
        let l = cx
            .session
            .netlink()?
            .link_by_name(dev)?
            .with_context(|| format!("interface {dev} does not exist"))?;
        if !l.up {
            bail!("interface {dev} is down");
        }
        if !l.carrier {
            bail!("interface {dev} has no carrier");
        }
        Ok(format!("{dev} up, carrier"))
    }
}
