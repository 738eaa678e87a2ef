//! An rpath to the libtorch lib dir, so the fuzz target runs without `LD_LIBRARY_PATH`
//! (fugue links libtorch; its build.rs sets the rpath for fugue's own binaries only).

fn main() {
    // torch-sys declares `links = "tch"` and publishes its lib dir as metadata.
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys publishes libtorch_lib; set LIBTORCH_USE_PYTORCH=1 and put the venv's python3 first in PATH");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
}
