/*
 * s3_op_test.c - the table of S3 operations: every operation s3seal serves
 * is recognised as the backend reads it (names percent-decoded), and every
 * write it does not know is UnknownWrite, however its query is spelt.
 */
#include "proxy/s3_op.h"
#include "testlib.h"

static enum s3s_s3_op s_op(const char *method, const char *query, bool bucket, bool key,
                           bool copy)
{
    struct s3s_s3_op_input in = {s3s_cur_from_str(method), s3s_cur_from_str(query), bucket, key,
                                 copy};
    enum s3s_s3_op op;
    const char *detail;
    if (s3s_failed(s3s_s3_op_classify(&in, &op, &detail))) {
        return (enum s3s_s3_op) - 1;
    }
    return op;
}

#define OBJ(m, q) s_op(m, q, true, true, false)
#define OBJ_COPY(m, q) s_op(m, q, true, true, true)
#define BKT(m, q) s_op(m, q, true, false, false)
#define REFUSED ((enum s3s_s3_op) - 1)

static void test_known(void)
{
    T_CHECK(s_op("GET", "", false, false, false) == S3S_OP_LIST_BUCKETS);
    T_CHECK(OBJ("PUT", "") == S3S_OP_PUT_OBJECT);
    T_CHECK(OBJ("PUT", "x-id=PutObject") == S3S_OP_PUT_OBJECT);
    T_CHECK(OBJ_COPY("PUT", "x-id=CopyObject") == S3S_OP_COPY_OBJECT);
    T_CHECK(OBJ("POST", "uploads") == S3S_OP_CREATE_MPU);
    T_CHECK(OBJ("POST", "uploads=&x-id=CreateMultipartUpload") == S3S_OP_CREATE_MPU);
    T_CHECK(OBJ("PUT", "partNumber=2&uploadId=abc") == S3S_OP_UPLOAD_PART);
    T_CHECK(OBJ_COPY("PUT", "uploadId=abc&partNumber=2") == S3S_OP_UPLOAD_PART_COPY);
    T_CHECK(OBJ("POST", "uploadId=abc") == S3S_OP_COMPLETE_MPU);
    T_CHECK(OBJ("DELETE", "uploadId=abc") == S3S_OP_ABORT_MPU);
    T_CHECK(OBJ("GET", "uploadId=abc&max-parts=3") == S3S_OP_LIST_PARTS);
    T_CHECK(OBJ("GET", "") == S3S_OP_GET_OBJECT);
    T_CHECK(OBJ("GET", "partNumber=1&response-content-type=a") == S3S_OP_GET_OBJECT);
    T_CHECK(OBJ("HEAD", "versionId=v") == S3S_OP_HEAD_OBJECT);
    T_CHECK(OBJ("DELETE", "versionId=v") == S3S_OP_DELETE_OBJECT);
    T_CHECK(OBJ("PUT", "tagging&versionId=v") == S3S_OP_OBJECT_CONFIG_WRITE);
    T_CHECK(OBJ("PUT", "acl") == S3S_OP_OBJECT_CONFIG_WRITE);
    T_CHECK(OBJ("POST", "restore") == S3S_OP_RESTORE_OBJECT);
    T_CHECK(BKT("PUT", "") == S3S_OP_CREATE_BUCKET);
    T_CHECK(BKT("PUT", "versioning") == S3S_OP_BUCKET_CONFIG_WRITE);
    T_CHECK(BKT("PUT", "encryption") == S3S_OP_BUCKET_ENCRYPTION);
    /* ?cors is answered by s3seal, percent-encoded or not. */
    T_CHECK(BKT("PUT", "cors") == S3S_OP_BUCKET_CORS);
    T_CHECK(BKT("GET", "cors") == S3S_OP_BUCKET_CORS);
    T_CHECK(BKT("DELETE", "cor%73") == S3S_OP_BUCKET_CORS);
    T_CHECK(BKT("GET", "cors&id=1") != S3S_OP_BUCKET_CONFIG_READ);
    T_CHECK(BKT("GET", "list-type=2&prefix=a&max-keys=5") == S3S_OP_LIST_OBJECTS);
    T_CHECK(BKT("GET", "uploads&prefix=a") == S3S_OP_LIST_UPLOADS);
    T_CHECK(BKT("GET", "location") == S3S_OP_BUCKET_CONFIG_READ);
    T_CHECK(BKT("POST", "delete") == S3S_OP_DELETE_OBJECTS);
    T_CHECK(BKT("POST", "") == S3S_OP_POST_OBJECT);
    T_CHECK(strcmp(s3s_s3_op_name(S3S_OP_UPLOAD_PART), "UploadPart") == 0);
    T_CHECK(s3s_s3_op_is_read(S3S_OP_LIST_PARTS) && !s3s_s3_op_is_read(S3S_OP_ABORT_MPU));
}

/* A presigned URL's authentication parameters are no sub-resource. */
static void test_presigned(void)
{
    const char *q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20260101%2Fus-east-1"
                    "%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60"
                    "&X-Amz-SignedHeaders=host&X-Amz-Signature=abcd";
    T_CHECK(OBJ("PUT", q) == S3S_OP_PUT_OBJECT);
    T_CHECK(OBJ("PUT", "AWSAccessKeyId=A&Expires=1&Signature=x") == S3S_OP_PUT_OBJECT);
    /* Encoded the same, as the backend decodes them. */
    T_CHECK(OBJ("PUT", "X-Amz-Sign%61ture=abcd&X-Amz-Date=1") == S3S_OP_PUT_OBJECT);
    /* SDK presigners hoist some headers into the query. */
    T_CHECK(OBJ("PUT", "x-amz-acl=private&x-amz-checksum-crc32=AAAAAA%3D%3D") ==
            S3S_OP_PUT_OBJECT);
}

/* Names are compared decoded: what the backend reads is what s3seal reads. */
static void test_encoded_names(void)
{
    T_CHECK(OBJ("POST", "upload%73") == S3S_OP_CREATE_MPU);
    T_CHECK(OBJ("POST", "%75%70%6c%6F%61%64%73=") == S3S_OP_CREATE_MPU);
    T_CHECK(OBJ("PUT", "partNumber=1&upload%49d=abc") == S3S_OP_UPLOAD_PART);
    T_CHECK(OBJ("POST", "upload%49d=abc") == S3S_OP_COMPLETE_MPU);
    T_CHECK(s3s_s3_param_name_is(S3S_CUR_LIT("upload%49d"), "uploadId"));
    T_CHECK(!s3s_s3_param_name_is(S3S_CUR_LIT("upload%49"), "uploadId"));
    T_CHECK(s3s_s3_is_auth_param(S3S_CUR_LIT("X-Amz-Sign%61ture")));
    T_CHECK(!s3s_s3_is_auth_param(S3S_CUR_LIT("x-amz-signature")));
}

/* Writes s3seal does not know are UnknownWrite, never PutObject. */
static void test_unknown_writes(void)
{
    T_CHECK(OBJ("PUT", "versionId=v") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PUT", "partNumber=1") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PUT", "uploadId=abc") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PUT", "append&position=0") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PUT", "foo=bar") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PUT", "a-name-longer-than-any-parameter-s3seal-knows-of-by-far-0123456789") ==
            S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("POST", "uploads&partNumber=1") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("POST", "") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ("PATCH", "") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ_COPY("PUT", "acl") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(OBJ_COPY("POST", "uploads") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(BKT("PUT", "versioning&acl") == S3S_OP_UNKNOWN_WRITE);
    T_CHECK(s_op("PUT", "", false, false, false) == S3S_OP_UNKNOWN_WRITE);
    /* Reads that no row names are relayed as reads. */
    T_CHECK(OBJ("GET", "foo") == S3S_OP_UNKNOWN_READ);
}

/* Queries that could be read two ways are refused. */
static void test_refused(void)
{
    T_CHECK(OBJ("POST", "uploadId=a&upload%49d=b") == REFUSED);
    T_CHECK(OBJ("PUT", "partNumber=1&partNumber=2&uploadId=a") == REFUSED);
    T_CHECK(OBJ("PUT", "uploads%00") == REFUSED);
    T_CHECK(OBJ("PUT", "x-amz-copy-source=b%2Fk") == REFUSED);
    T_CHECK(OBJ("PUT", "X-Amz-Server-Side-Encryption=AES256") == REFUSED);
    T_CHECK(OBJ("PUT", "x-amz-meta-s3seal-md5=00") == REFUSED);
    T_CHECK(OBJ("PUT", "x-amz-meta-S3SEAL-key=x") == REFUSED);
    T_CHECK(OBJ("PUT", "x-amz-metadata-directive=COPY") == REFUSED);
    /* Reads store nothing: a hoisted header or a repeated name is relayed. */
    T_CHECK(OBJ("GET", "x-amz-copy-source=b%2Fk") == S3S_OP_GET_OBJECT);
    T_CHECK(OBJ("GET", "versionId=a&versionId=b") == S3S_OP_GET_OBJECT);
}

int main(void)
{
    test_known();
    test_presigned();
    test_encoded_names();
    test_unknown_writes();
    test_refused();
    return t_finish("proxy.s3_op");
}
