//! Kernel settings under `/proc/sys`, read one way by every binary: the key as sysctl(8)
//! names it (`net.ipv4.ip_forward`; a `/` inside a part stands for a dot in an interface
//! name, `net.ipv6.conf.eth0/100.forwarding` for the VLAN `eth0.100`), the value trimmed.
//! A key that could leave `/proc/sys` (an empty part, `..`) is refused, never read.

use std::path::PathBuf;

/// The file behind `key`, or why the key is not one.
pub fn path(key: &str) -> Result<PathBuf, String> {
    let parts: Vec<String> = key.split('.').map(|p| p.replace('/', ".")).collect();
    path_of(&parts.iter().map(String::as_str).collect::<Vec<_>>())
        .map_err(|e| format!("sysctl {key:?}: {e}"))
}

/// The file behind a key given as its parts (`["net", "ipv6", "conf", dev, "forwarding"]`:
/// an interface name may hold dots).
pub fn path_of(parts: &[&str]) -> Result<PathBuf, String> {
    let mut p = PathBuf::from("/proc/sys");
    for part in parts {
        let ok = !part.is_empty()
            && *part != "."
            && *part != ".."
            && part.len() <= 64
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
        if !ok {
            return Err(format!("{part:?} is not a part of a sysctl key"));
        }
        p.push(part);
    }
    if parts.is_empty() {
        return Err("empty key".into());
    }
    Ok(p)
}

/// The value of `key` (sysctl(8)'s notation), trimmed.
pub fn read(key: &str) -> anyhow::Result<String> {
    let p = path(key).map_err(anyhow::Error::msg)?;
    read_file(&p, key)
}

/// The value of the key with these parts, trimmed.
pub fn read_parts(parts: &[&str]) -> anyhow::Result<String> {
    let p = path_of(parts).map_err(anyhow::Error::msg)?;
    read_file(&p, &parts.join("."))
}

fn read_file(p: &std::path::Path, key: &str) -> anyhow::Result<String> {
    let text = crate::runtime::read_file(p, 4096, crate::runtime::Trust::Config)
        .map_err(|e| anyhow::anyhow!("read sysctl {key}: {e:#}"))?;
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_and_never_leave_it() {
        assert_eq!(
            path("net.ipv4.ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        // sysctl(8): a slash in a key part is a dot in the name (a VLAN interface).
        assert_eq!(
            path("net.ipv6.conf.eth0/100.forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/forwarding")
        );
        assert_eq!(
            path_of(&["net", "ipv6", "conf", "eth0.100", "forwarding"]).unwrap(),
            PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/forwarding")
        );
        for bad in [
            "",
            "net..ipv4",
            "net.ipv4.",
            "net/../../etc.passwd",
            "a.b c",
        ] {
            assert!(path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(path_of(&["net", ".."]).is_err());
        assert!(path_of(&[]).is_err());
    }

    /// A key every Linux has, readable without root.
    #[test]
    fn reads_a_value_trimmed() {
        assert_eq!(read("kernel.ostype").unwrap(), "Linux");
        assert_eq!(read_parts(&["kernel", "ostype"]).unwrap(), "Linux");
        let e = read("kernel.no_such_key").unwrap_err();
        assert!(format!("{e:#}").contains("kernel.no_such_key"), "{e:#}");
    }
}
