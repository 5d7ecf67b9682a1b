//! `make lab-clean`: removes every network namespace (and the processes inside it) that a
//! killed test run, demo or benchmark left behind, by the `hakit-` prefix.

fn main() -> std::process::ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("hakit-lab-clean: needs root to delete network namespaces");
        return std::process::ExitCode::from(2);
    }
    let removed = hakit_lab::clean_all();
    if removed.is_empty() {
        println!("lab-clean: no {}* namespaces left", hakit_lab::PREFIX);
    } else {
        println!(
            "lab-clean: removed {} namespace(s): {}",
            removed.len(),
            removed.join(" ")
        );
    }
    for entry in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(hakit_lab::PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    std::process::ExitCode::SUCCESS
}
