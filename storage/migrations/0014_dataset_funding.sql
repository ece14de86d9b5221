-- The funding rates a dataset was built with (`FundingSchedule.to_json`: its source, and every funding
-- time in the dataset's span with its rate): from the venue's funding history ('venue'), a file given to
-- `dataset build` ('file:PATH'), or the offline preset ('preset:base_rate', BingX's rate when the premium
-- is nil, at every funding time). Training and evaluation charge them; datasets built before this
-- migration have none (NULL) and are traded without funding, which their evaluations say.
ALTER TABLE dataset_versions ADD COLUMN funding jsonb;
