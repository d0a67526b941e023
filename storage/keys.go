package storage

import (
	"encoding/binary"
	"fmt"
)

// Key layout (docs/storage.md has the table):
//
//	r <id:1> <bucket:8> <seq:8>    a segment of records ending at seq
//	                               (segment.go); bucket = seq / BucketRecords
//	m/format                       storage format version
//	m/boot                         the last boot number
//	m/id                           the store's incarnation id (Store.StoreID)
//	m/stream/<name>                stream id and bucket size
//	m/last/<id:1>                  highest sequence number written
//	m/cursor/<id:1>                highest sequence number acknowledged
//	m/evict/<id:1>                 buckets an eviction is about to drop
//	m/lineage                      a restored store's lineage (Reincarnate), JSON
//	s/<key>                        small state (PutState, GetState)
//
// Integers are big-endian so that keys sort in numeric order. The bucket
// is a function of the sequence number and a segment never spans two
// buckets, so a stream's keys sort by sequence and a bucket is a key
// prefix that DropPrefix deletes whole.
const (
	prefixRecord = 'r'
	keyLen       = 1 + 1 + 8 + 8
	bucketKeyLen = 1 + 1 + 8

	// formatVersion is the storage format: key layout and record encoding.
	// Format 2 keeps a segment of records under each record key; format 1
	// kept one record, and Open upgrades such a store in place (its values
	// read as segments of one record). Open moves aside a directory
	// written with any other version.
	formatVersion         = 2
	formatOneRecordPerKey = 1
)

var (
	keyFormat       = []byte("m/format")
	keyBoot         = []byte("m/boot")
	keyID           = []byte("m/id")
	prefixStreamDef = []byte("m/stream/")
	prefixLast      = []byte("m/last/")
	prefixCursor    = []byte("m/cursor/")
	prefixEvict     = []byte("m/evict/")
	prefixState     = []byte("s/")
)

// appendRecordKey appends the key of a record to b.
func appendRecordKey(b []byte, id uint8, bucketRecords, seq uint64) []byte {
	b = append(b, prefixRecord, id)
	b = binary.BigEndian.AppendUint64(b, seq/bucketRecords)
	return binary.BigEndian.AppendUint64(b, seq)
}

// bucketPrefix is the key prefix shared by the records of one bucket.
func bucketPrefix(id uint8, bucket uint64) []byte {
	b := make([]byte, 0, bucketKeyLen)
	b = append(b, prefixRecord, id)
	return binary.BigEndian.AppendUint64(b, bucket)
}

// streamPrefix is the key prefix shared by a stream's records.
func streamPrefix(id uint8) []byte { return []byte{prefixRecord, id} }

// parseRecordKey returns the stream id, bucket and sequence number of a
// record key.
func parseRecordKey(k []byte) (id uint8, bucket, seq uint64, err error) {
	if len(k) != keyLen || k[0] != prefixRecord {
		return 0, 0, 0, fmt.Errorf("not a record key: %x", k)
	}
	return k[1], binary.BigEndian.Uint64(k[2:]), binary.BigEndian.Uint64(k[10:]), nil
}

func idKey(prefix []byte, id uint8) []byte {
	return append(append([]byte(nil), prefix...), id)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("want 8 bytes, got %d", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
