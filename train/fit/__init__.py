"""Fitting: the stage loop and resume (loop), one step and epoch (engine), the one-cycle schedule and LR finder,
torchrun's processes (distributed), and the run folder with its training figures."""
