//! ld-nc: runs static x86_64 Linux programs on this host through the translator.

fn main() {
    ld_nc::run::main::<translator::HostBackend>()
}
