//! The reference architectures of the design notes, to the parameter.

mod common;

use common::compiled;

#[test]
fn cifar_googlenet_matches_pytorch_cifar() {
    let g = compiled("specs/inception_v1.net", &[]).graph;
    assert_eq!(g.total_params(), 6_166_250);
    assert_eq!(g.total_macs(), 1_521_756_160, "1.52 G multiply-adds, as counted by PyTorch forward hooks");
}

#[test]
fn cifar_googlenet_at_quarter_width_matches_the_torch_baseline() {
    let g = compiled("specs/inception_v1.net", &[("width", 0.25)]).graph;
    assert_eq!(g.total_params(), 392_738);
    assert_eq!(g.total_macs(), 96_107_008);
}

#[test]
fn torchvision_googlenet_matches_to_the_parameter() {
    let g = compiled("specs/googlenet_imagenet.net", &[]).graph;
    assert_eq!(g.total_params(), 6_624_904);
    assert_eq!(g.total_macs(), 1_498_376_192);
    let side = |name: &str| g.node(name).unwrap_or_else(|| panic!("no node {name}")).shape[1];
    let sides: Vec<usize> = ["conv1.relu", "pool1", "pool2", "pool3", "pool4"].iter().map(|n| side(n)).collect();
    assert_eq!(sides, [112, 56, 28, 14, 7]);
}

#[test]
fn ran92_matches_the_public_port_less_its_unused_shortcuts() {
    let g = compiled("specs/ran92.net", &[]).graph;
    assert_eq!(g.total_params(), 12_170_730);
    assert_eq!(g.total_macs(), 1_089_185_792);
}

#[test]
fn every_parameter_name_is_unique_and_hierarchical() {
    let g = compiled("specs/ours.net", &[]).graph;
    let names: Vec<&str> = g.nodes.iter().flat_map(|n| &n.params).map(|p| p.name.as_str()).collect();
    let unique: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert!(names.contains(&"a3.b2.conv_bn_1.conv.weight"), "{:?}", &names[..20]);
    assert!(names.contains(&"stem.conv.weight"));
}
