//! ld-nc: runs x86_64 Linux programs on this host (placeholder until the loader lands).

fn main() {
    eprintln!("ld-nc: not built yet");
    std::process::exit(127);
}
