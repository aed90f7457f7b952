package kvstore

import "context"

// Item is one key and its value as JSON text.
type Item struct {
	Key   string
	Value []byte
}

// GetMany returns the JSON value of each key, nil where a key is absent.
func (s *Store) GetMany(ctx context.Context, name string, keys []string) ([][]byte, error) {
	if err := s.limits.validateBatch(len(keys)); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := s.limits.ValidateKey(k); err != nil {
			return nil, err
		}
	}
	var res struct {
		Values [][]byte `msgpack:"values"`
	}
	if err := s.call(ctx, name, "kv.get", map[string]any{"rdd": name, "keys": keys}, &res); err != nil {
		return nil, err
	}
	return res.Values, nil
}

// Get returns the JSON value of one key and whether it exists.
func (s *Store) Get(ctx context.Context, name, key string) ([]byte, bool, error) {
	vals, err := s.GetMany(ctx, name, []string{key})
	if err != nil || len(vals) != 1 {
		return nil, false, err
	}
	return vals[0], vals[0] != nil, nil
}

// SetMany writes every item or, if any is invalid, none.
func (s *Store) SetMany(ctx context.Context, name string, items []Item) (int, error) {
	if err := s.limits.validateBatch(len(items)); err != nil {
		return 0, err
	}
	wire := make([][2]any, len(items))
	for i, it := range items {
		if err := s.limits.ValidateKey(it.Key); err != nil {
			return 0, err
		}
		if err := s.limits.ValidateValue(it.Value); err != nil {
			return 0, err
		}
		wire[i] = [2]any{it.Key, it.Value}
	}
	var res struct {
		Written int `msgpack:"written"`
	}
	err := s.call(ctx, name, "kv.set", map[string]any{"rdd": name, "items": wire}, &res)
	return res.Written, err
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, name, key string, value []byte) error {
	_, err := s.SetMany(ctx, name, []Item{{Key: key, Value: value}})
	return err
}

// DeleteMany deletes keys and returns how many existed.
func (s *Store) DeleteMany(ctx context.Context, name string, keys []string) (int, error) {
	if err := s.limits.validateBatch(len(keys)); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := s.limits.ValidateKey(k); err != nil {
			return 0, err
		}
	}
	var res struct {
		Deleted int `msgpack:"deleted"`
	}
	err := s.call(ctx, name, "kv.delete", map[string]any{"rdd": name, "keys": keys}, &res)
	return res.Deleted, err
}
