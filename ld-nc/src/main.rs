//! ld-nc: runs x86_64 Linux programs on this host through the translator and the native-library bridge.

fn main() {
    ld_nc::run::main::<translator::HostBackend>()
}
