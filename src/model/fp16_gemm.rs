//! fbgemm's matrix product with the weights packed once as fp16 (inputs, sums
//! and outputs stay fp32), through `fp16_gemm.cpp`, since tch does not bind it.
//!
//! Why: stepping a few streams reads every weight once per step, so on a CPU the
//! step waits on memory. Weights in half the bytes, packed once instead of on
//! every call as MKL does, step a lone stream about 3× faster and a batch of 64
//! about 1.2× (`fugue bench generate`). Packing rounds each weight to fp16 once.
//!
//! fbgemm gives a row other bits when it falls in a remainder of one or two rows,
//! which a kernel of its own computes; the engine pads its batches to sizes where
//! it does not ([`crate::devices::WeightFormat::batch_rows`]).
//!
//! libtorch marks both calls deprecated. They are in the libtorch fugue pins;
//! a libtorch without them fails to build the shim, loudly, and fp32 weights
//! (`FUGUE_GENERATE_WEIGHTS=fp32`) need neither. Their one-time warning is
//! dropped, since it would be a bare line among JSON logs.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

use tch::{Kind, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn fugue_fp16_pack(weight: *const C_tensor, error: *mut c_char, capacity: usize) -> *mut C_tensor;
    fn fugue_fp16_affine(
        input: *const C_tensor,
        packed: *const C_tensor,
        bias: *const C_tensor,
        error: *mut c_char,
        capacity: usize,
    ) -> *mut C_tensor;
}

/// `weight` (out × in, as a dense layer stores it) packed as fp16; it does not
/// follow later changes to `weight`.
pub fn pack(weight: &Tensor) -> anyhow::Result<Tensor> {
    let weight = weight.to_kind(Kind::Float).contiguous();
    call(|error, capacity| unsafe { fugue_fp16_pack(weight.as_ptr(), error, capacity) })
}

/// `input` (rows × in) · the packed weights + `bias` (out) → (rows × out).
pub fn affine(input: &Tensor, packed: &Tensor, bias: &Tensor) -> anyhow::Result<Tensor> {
    let input = input.contiguous();
    call(|error, capacity| unsafe {
        fugue_fp16_affine(input.as_ptr(), packed.as_ptr(), bias.as_ptr(), error, capacity)
    })
}

/// The tensor the shim made, or the message of the C++ exception it caught.
fn call(shim: impl FnOnce(*mut c_char, usize) -> *mut C_tensor) -> anyhow::Result<Tensor> {
    let mut error = [0 as c_char; 512];
    let made = shim(error.as_mut_ptr(), error.len());
    if made.is_null() {
        let message = unsafe { CStr::from_ptr(error.as_ptr()) };
        anyhow::bail!("fbgemm: {}", message.to_string_lossy());
    }
    // The shim allocated the tensor with `new`, as tch's own wrappers do; the
    // returned Tensor owns it and frees it when dropped.
    Ok(unsafe { Tensor::from_ptr(made) })
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    #[test]
    fn the_packed_product_is_the_product_with_weights_rounded_to_fp16() {
        let options = (Kind::Float, Device::Cpu);
        let weight = Tensor::randn([48, 40], options);
        let bias = Tensor::randn([48], options);
        let input = Tensor::randn([5, 40], options);
        let packed = pack(&weight).expect("fbgemm runs on the test machines");
        let product = affine(&input, &packed, &bias).unwrap();
        let rounded = weight.to_kind(Kind::Half).to_kind(Kind::Float);
        let expected = input.matmul(&rounded.tr()) + &bias;
        assert!(product.allclose(&expected, 1e-4, 1e-4, false));
        let exact = input.matmul(&weight.tr()) + &bias;
        assert!(!product.equal(&exact), "the weights were rounded");
    }

    #[test]
    fn a_shape_that_does_not_fit_is_an_error_not_a_crash() {
        let options = (Kind::Float, Device::Cpu);
        let packed = pack(&Tensor::randn([8, 4], options)).unwrap();
        let error = affine(&Tensor::randn([2, 5], options), &packed, &Tensor::randn([8], options));
        assert!(error.is_err());
    }
}
