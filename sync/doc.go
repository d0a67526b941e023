// Package sync will own the MQTT link on both ends: the edge uploader that
// drains storage to the broker with application-level acknowledgements, the
// signed command channel, and the cloud-side ingester used by vigil-fleet.
//
// Not built yet; see the sync and fleet issue.
package sync
