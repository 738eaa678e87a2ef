//! Link-time fixes for libtorch that tch's own build script cannot make.
//!
//! * An rpath to the libtorch lib dir, so `fugue` runs without `LD_LIBRARY_PATH`.
//! * `libtorch_cuda.so` linked with `--no-as-needed`: nothing in fugue calls into it
//!   directly, so the linker would drop it and CUDA devices would silently never
//!   be seen. Its static initialisers register the CUDA backend with libtorch.
//! * `src/model/fp16_gemm.cpp`: two ATen calls tch does not bind (fbgemm's product
//!   with fp16 weights), compiled against the same libtorch's headers.

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
    let include = Path::new(&lib_dir).join("../include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .include(&include)
        .flag("-std=c++17")
        // PyTorch's wheels (2.13.0, which tch 0.26 needs) are built with the new ABI.
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .file("src/model/fp16_gemm.cpp")
        .compile("fugue_fp16_gemm");
    println!("cargo:rerun-if-changed=src/model/fp16_gemm.cpp");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
}
