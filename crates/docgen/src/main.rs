//! `hakit-docgen --out DIR`: man pages and shell completions for the four binaries.

use std::path::PathBuf;

const USAGE: &str = "\
usage: hakit-docgen --out DIR

Writes, for garp-burst, nat-notify, ha-check and fip-claim:
  DIR/man/man8/NAME.8 and NAME-SUBCOMMAND.8   man pages
  DIR/completions/bash/NAME                   bash completion
  DIR/completions/zsh/_NAME                   zsh completion
  DIR/completions/fish/NAME.fish              fish completion

Exit codes: 0 written, 1 a file could not be written, 2 usage error";

fn parse_args() -> anyhow::Result<PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag, dir] if flag == "--out" => Ok(PathBuf::from(dir)),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            std::process::exit(0)
        }
        _ => anyhow::bail!("expected --out DIR"),
    }
}

fn main() -> std::process::ExitCode {
    let out = match parse_args() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("hakit-docgen: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match hakit_docgen::generate(&out) {
        Ok(files) => {
            let n = files.len();
            eprintln!("hakit-docgen: wrote {n} files under {}", out.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hakit-docgen: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
