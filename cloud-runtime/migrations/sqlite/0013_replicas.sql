-- Which runtime replica holds the connector's live tunnel (`serve --replica-id`): a replica
-- starting again clears only the online flags it set, not those of its peers.
ALTER TABLE connectors ADD COLUMN replica TEXT;
