use candle_core::{Device, Tensor};
use netc::runtime::{Mode, Model};
use std::time::Instant;
fn main() {
    let spec = std::env::args().nth(1).unwrap();
    let width: f64 = std::env::args().nth(2).unwrap().parse().unwrap();
    let g = netc::compile::compile_file(std::path::Path::new(&spec), &[("width".into(), width)]).unwrap().graph;
    let mut m = Model::new(&g, &Device::Cpu, 0).unwrap();
    let x = Tensor::randn(0f32, 1.0, (64, 3, 32, 32), &Device::Cpu).unwrap();
    let y = Tensor::zeros(64, candle_core::DType::U32, &Device::Cpu).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let out = m.forward(&x, Mode::Train, &[], 0).unwrap();
        let loss = netc::train::cross_entropy(&out.logits, &y, 0.0).unwrap();
        let _ = loss.to_scalar::<f32>();
        let tf = t.elapsed();
        let _g = loss.backward().unwrap();
        println!("forward {:?} backward {:?}", tf, t.elapsed() - tf);
    }
}
