//! Makes the `atlas` binary (and test binaries) find libtorch without `LD_LIBRARY_PATH`.
//!
//! torch-sys exports the libtorch directory through its `links = "tch"` key as
//! `DEP_TCH_LIBTORCH_LIB`, but puts no rpath on the final binary. We add one here.
//! We also force `libtorch_cuda.so` into the NEEDED list: with the default as-needed linking
//! it is dropped (no symbol of it is referenced directly), and then CUDA is never registered,
//! so `tch::Cuda::is_available()` would stay false even on a GPU machine.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!(
            "cargo:warning=DEP_TCH_LIBTORCH_LIB not set: the binary will need LD_LIBRARY_PATH"
        );
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    let dir = std::path::Path::new(&lib_dir);
    if dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-ltorch_cuda,--pop-state");
    }
}
