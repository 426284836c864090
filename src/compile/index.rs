//! The source index: which place in the spec made which graph node. A side
//! table that compile fills as it instantiates the net, for the editor
//! (`netc lsp`); the Graph IR itself keeps no spans (ARCHITECTURE.md).
//!
//! It is kept even when the spec has errors, so that whatever did compile
//! can still be shown.

use std::ops::Range;
use std::path::PathBuf;

use crate::diag::Loc;
use crate::graph::{Node, NodeId};

/// What a name or a call evaluated to, as far as the editor cares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// A feature map: this node's output.
    Node(NodeId),
    Num(f64),
    /// Anything else (a list, a setting word, a boolean), described.
    Other(&'static str),
    /// An expression that failed.
    Error,
}

/// One evaluation of a place in the spec. A place inside a block has one
/// site per instance of the block.
#[derive(Clone, Debug)]
pub struct Site {
    /// The name (assignment, input, parameter, probe) or the callee of a
    /// call.
    pub loc: Loc,
    pub value: Bound,
    /// The nodes this evaluation created, in [`Index::nodes`].
    pub nodes: Range<NodeId>,
}

/// A block definition's signature.
#[derive(Clone, Debug)]
pub struct BlockSig {
    pub name: String,
    /// The block's name in its `block` line.
    pub loc: Loc,
    /// Parameters, with the source text of their defaults.
    pub params: Vec<(String, Option<String>)>,
}

#[derive(Clone, Debug, Default)]
pub struct Index {
    /// Every node created, even if the spec then failed; parameter names
    /// are their roles (`weight`), without the node's name.
    pub nodes: Vec<Node>,
    /// Names bound: assignments, the input, block and net parameters, probes.
    pub bindings: Vec<Site>,
    /// Op and block calls, at their callee's name.
    pub calls: Vec<Site>,
    /// Every block definition that was loaded.
    pub blocks: Vec<BlockSig>,
    /// Every `use`: where it is, and the file it names.
    pub uses: Vec<(Loc, PathBuf)>,
}

impl Index {
    /// Orders the sites by place (instances keep their order), for
    /// [`Index::bindings_at`] and [`Index::calls_at`].
    pub(super) fn sort(&mut self) {
        let key = |s: &Site| (s.loc.file, s.loc.span.start, s.loc.span.end);
        self.bindings.sort_by_key(key);
        self.calls.sort_by_key(key);
    }

    /// The binding sites at `loc`, one per instance.
    pub fn bindings_at(&self, loc: Loc) -> impl Iterator<Item = &Site> {
        at(&self.bindings, loc)
    }

    /// The call sites at `loc` (a callee's name), one per instance.
    pub fn calls_at(&self, loc: Loc) -> impl Iterator<Item = &Site> {
        at(&self.calls, loc)
    }

    pub fn block(&self, name: &str) -> Option<&BlockSig> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

/// The sites at `loc` in a list sorted by place.
fn at(sites: &[Site], loc: Loc) -> impl Iterator<Item = &Site> {
    let key = (loc.file, loc.span.start, loc.span.end);
    let first = sites.partition_point(|s| (s.loc.file, s.loc.span.start, s.loc.span.end) < key);
    sites[first..].iter().take_while(move |s| s.loc == loc)
}
