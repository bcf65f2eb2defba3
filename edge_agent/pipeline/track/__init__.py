"""Multi-object tracking: a Kalman filter per track and the assignment of detections to tracks."""
