"""Test settings: the models here are small, so torch runs on one CPU thread (more threads only
add synchronisation cost on tiny batches, and a lot of it on a busy machine)."""

import torch

torch.set_num_threads(1)
