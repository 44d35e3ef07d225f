//! ld-nc: runs static x86_64 Linux programs on this host through the translator.
//!
//! Until the host backend implements `translator::Backend`, this binary only reports that; the
//! runtime itself is in the library (`ld_nc::run::main::<translator::HostBackend>()`).

fn main() {
    eprintln!("ld-nc: the translator backend for this host is not built yet");
    std::process::exit(127);
}
