//! Link-time fixes for libtorch that tch's own build script cannot make.
//!
//! * An rpath to the libtorch lib dir, so `fugue` runs without `LD_LIBRARY_PATH`.
//! * `libtorch_cuda.so` linked with `--no-as-needed`: nothing in fugue calls into it
//!   directly, so the linker would drop it and CUDA devices would silently never
//!   be seen. Its static initialisers register the CUDA backend with libtorch.

use std::path::Path;

fn main() {
    // torch-sys declares `links = "tch"` and publishes its lib dir as metadata.
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys publishes libtorch_lib; run through `make`, which sets up libtorch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if Path::new(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
}
