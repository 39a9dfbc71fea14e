// rust-embed does not notice files added to the embedded folder (Vite's hashed names change
// every build), so tell cargo to rebuild when web/dist changes at all.
fn main() {
    println!("cargo:rerun-if-changed=../../web/dist");
}
