"""Online eye-signal processing: blinks, gaps, saccades, fixations, pupil correction and fixation maps.

`EyeSignalProcessor` (streaming, fixed delay, chunk-invariant) turns `Tobii_gaze` into `eyemotion_gaze`
and eye events; `process_recording` runs it offline; `EyeSignalNode` runs it on LSL; `maps` builds
fixation maps; `validate` compares it with the simulator's ground truth and pymovements.
"""

from eyemotion.inference.eyesignal.processor import (  # noqa: F401
    OUT,
    EyeSignalOutput,
    EyeSignalProcessor,
    Timing,
    ivt,
    process_recording,
)
