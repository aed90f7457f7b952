// Package redisapi is srdd's Redis-protocol front end (issue 26): any
// Redis client reads and writes shared RDDs over RESP2 or RESP3. Key
// "rdd:key" is key "key" of shared RDD "rdd". Every data command is
// served as an in-process call to the node's REST routes
// (httpapi.Server.Local), so the Redis port has the same permission
// rules, forwarding to the RDD's owner, validation, limits, metrics and
// audit log as the API port (DESIGN.md).
package redisapi
