"""Features (issue 6): the 103 windowed gaze statistics (`gaze_stats`), eGeMAPS audio (`audio`), the face
pipeline of the camera node (`face`, publishing eyemotion_face), the EMERT / crossmodal model input builders
(`builders`) and normalisation statistics saved with a model (`normalisation`). Heavy imports stay inside
the submodules; `eyemotion features SESSION` (`commands`) writes the tables of a recorded session."""
