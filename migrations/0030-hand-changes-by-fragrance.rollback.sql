-- Index the hand changes of the history by fragrance and moment, for the drift report
-- depends: 0028-number-out-of-range

drop index sync.fragrance_history_hand_idx;
