import os
os.environ.setdefault('OMP_NUM_THREADS', '2'); os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE'); os.environ.setdefault('MPLBACKEND', 'Agg')
import torch
torch.set_num_threads(2)
