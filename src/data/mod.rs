//! Data: built-in synthetic images, CIFAR-10 binaries and image folders, and the batches made from them.
